"""The lock files of deploy/requirements/ and pyproject.toml's pins, read as plain data."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "deploy" / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalized(name: str) -> str:
    """A distribution name as PyPI compares them: lowercase, runs of `-_.` as one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    """{name: version} of `name==version` requirement lines (extras and markers dropped)."""
    found: dict[str, str] = {}
    for line in requirements:
        match = _PIN.match(line.strip())
        if match:
            found[normalized(match.group(1))] = match.group(2)
    return found


def runtime_pins(pyproject: Path = ROOT / "pyproject.toml") -> set[str]:
    """The names of lakesync's runtime dependencies."""
    return set(pins(tomllib.loads(pyproject.read_text())["project"]["dependencies"]))


def locked(lock: Path) -> list[tuple[str, str, list[str]]]:
    """(name, version, hashes) of each requirement of a lock file (one per marker fork)."""
    entries: list[tuple[str, str, list[str]]] = []
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            entries.append((normalized(match.group(1)), match.group(2), []))
        elif line.strip().startswith("--hash=") and entries:
            entries[-1][2].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
    return entries


def locked_names(lock: Path) -> set[str]:
    return {name for name, _version, _hashes in locked(lock)}
