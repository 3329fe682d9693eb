"""The consumer never loads pyspark: its image has none (deploy/docker/consumer.Dockerfile)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import streaming.consumer

CONSUMER_MODULES = [f"streaming.consumer.{m.name}" for m in pkgutil.iter_modules(streaming.consumer.__path__)]

# What `lakesync consume` imports, and what the CLI does with any error it ends with.
_PROBE = f"""
import sys
import importlib
for name in {CONSUMER_MODULES!r}:
    importlib.import_module(name)
import lakesync.cli
from connectors import postgres_schema
from lakesync import preflight
from streaming.consumer.service import ConsumerService
for error in (Exception("x"), lakesync.errors.LakesyncError("x")):
    lakesync.cli.exit_code(error)
    lakesync.cli.one_line(error)
print(sorted(m for m in sys.modules if m == "pyspark" or m.startswith("pyspark.")))
"""


def test_importing_the_consumer_and_its_cli_path_loads_no_pyspark() -> None:
    """In a fresh interpreter, so nothing another test imported counts."""
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout
