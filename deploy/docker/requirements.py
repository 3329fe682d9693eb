"""Print lakesync's pinned runtime dependencies (pyproject.toml), minus those a service never imports.

    python deploy/docker/requirements.py pyproject.toml --without pyspark delta-spark deltalake pandas

`make lock` compiles that list into the consumer image's lock file (deploy/requirements/consumer.txt):
the consumer never starts Spark nor reads Delta, so Spark (pyspark), Delta (delta-spark, deltalake)
and pandas stay out of it. One source of versions: the pins in pyproject.toml.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def distribution_name(requirement: str) -> str:
    """`psycopg[binary]==3.3.9` -> `psycopg` (normalised: lowercase, `_`/`.` as `-`)."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_requirements(pyproject: Path, without: set[str]) -> list[str]:
    """The `[project] dependencies` lines, except the named distributions (each must exist)."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    names = {distribution_name(d) for d in dependencies}
    unknown = {distribution_name(w) for w in without} - names
    if unknown:
        raise ValueError(f"not dependencies of lakesync: {sorted(unknown)}")
    excluded = {distribution_name(w) for w in without}
    return [d for d in dependencies if distribution_name(d) not in excluded]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--without", nargs="*", default=[])
    args = parser.parse_args(argv)
    print("\n".join(runtime_requirements(args.pyproject, set(args.without))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
