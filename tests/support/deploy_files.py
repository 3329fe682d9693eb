"""Read the deployment files the way their tools do, so tests check (and run) what ships.

- Dockerfiles: instructions per build stage, continuation lines joined, exec-form JSON decoded.
- Compose: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` interpolation from an
  env file, as `docker compose` does before it validates the file.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str]:
        """ENTRYPOINT/CMD in exec form (a JSON array); anything else is an error."""
        args = self.last(keyword)
        assert args is not None, f"no {keyword}"
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{keyword} is not exec form"
        return value

    def env(self) -> dict[str, str]:
        """ENV KEY=VALUE pairs (values may refer to earlier ones as $NAME, left as written)."""
        pairs: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in re.findall(r'(\w+)=("[^"]*"|\S+)', args):
                pairs[item[0]] = item[1].strip('"')
        return pairs


def dockerfile_stages(path: Path) -> list[Stage]:
    """Build stages in order; the last one is the image."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        else:
            assert stages, f"{path}: {keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution; an unset `${VAR:?message}` raises KeyError(message)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is not None:
            return value
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return _VARIABLE.sub(replace, text)


def compose_model(env: Mapping[str, str]) -> dict[str, Any]:
    """deploy/compose.yaml after interpolation with `env` (e.g. deploy/.env.example)."""
    loaded = yaml.safe_load(interpolate((DEPLOY / "compose.yaml").read_text(), env))
    assert isinstance(loaded, dict)
    return loaded


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under deploy/k8s (the kustomization file excluded)."""
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path, document))
    return found


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def load_script(path: Path) -> ModuleType:
    """A script of deploy/ that is not part of a package (deploy/docker/*.py), imported by its path."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
