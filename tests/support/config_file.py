"""The one way tests write settings to a file: TOML, secrets revealed, readable by its owner only."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lakesync.config import LakesyncSettings

_SECRETS = {
    ("postgres", "password"),
    ("kafka", "sasl_password"),
    ("kafka", "ssl_key_password"),
    ("s3", "secret_access_key"),
}


def write_config(path: Path, settings: LakesyncSettings) -> Path:
    """Every setting of `settings` in one TOML file (sections, [[tables]] with their columns and lookups)."""
    data = settings.model_dump(mode="json")
    for section, key in _SECRETS:  # model_dump masks SecretStr values; the file needs them
        secret = getattr(getattr(settings, section), key)
        data[section][key] = secret.get_secret_value() if secret is not None else None
    return write_toml(path, data)


def write_toml(path: Path, data: Mapping[str, Any]) -> Path:
    """Plain values as TOML: top-level keys, [sections], [[tables]] with [[tables.columns]] and
    [[tables.lookups]]; None values are left out. The file is 0600 from its creation: it holds passwords."""
    lines = [_pair(k, v) for k, v in data.items() if not isinstance(v, (dict, list))]
    for section, values in data.items():
        if isinstance(values, dict):
            lines += [f"[{section}]", *(_pair(k, v) for k, v in values.items())]
    for table in data.get("tables", []):
        lines += ["[[tables]]", *(_pair(k, v) for k, v in table.items() if k not in ("columns", "lookups"))]
        for kind in ("columns", "lookups"):
            for item in table.get(kind, []):
                lines += [f"[[tables.{kind}]]", *(_pair(k, v) for k, v in item.items())]
    text = "\n".join(line for line in lines if line) + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    path.chmod(0o600)  # an existing file keeps its mode through O_CREAT
    return path


def _pair(key: str, value: Any) -> str:
    return "" if value is None else f"{json.dumps(key)} = {_value(value)}"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)  # strings, numbers and booleans are spelled the same in TOML
