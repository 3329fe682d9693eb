"""Shared by the benchmarks: a fresh stack, the machine line, memory readings, BENCHMARKS.md sections."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.embedded_stack import EmbeddedStack

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"


@contextmanager
def fresh_stack(prefix: str) -> Iterator[tuple[EmbeddedStack, Path]]:
    """Fresh embedded Kafka + PostgreSQL under a new temporary home; both gone afterwards."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)  # PostgreSQL runs as its own user and must reach its data directory
    stack = EmbeddedStack.at(home / "embedded")
    stack.up()
    try:
        yield stack, home
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


def machine() -> str:
    """e.g. 'Run 2026-11-22 on 2 cores (x86_64, 24 GiB), Python 3.11.7'."""
    return (
        f"Run {dt.date.today().isoformat()} on {os.cpu_count()} cores ({platform.machine()}, "
        f"{_memory_gib():.0f} GiB), Python {platform.python_version()}"
    )


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone (FileNotFoundError, or ProcessLookupError mid-read)
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def rss_kib(pid: int) -> int:
    """The process's resident memory now (VmRSS), 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone (FileNotFoundError, or ProcessLookupError mid-read)
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


RESULTS = ROOT / "bench" / "results"


def write_results(bench: str, results: object) -> Path:
    """`bench/results/<bench>.json`: the run's figures, machine-readable."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{bench}.json"
    path.write_text(json.dumps({"machine": machine(), "results": results}, indent=2, default=str) + "\n")
    return path


def write_section(start: str, end: str, section: str, path: Path = BENCHMARKS) -> None:
    """Replace the text between `start` and `end` markers (append the section if absent)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\nFigures written by the scripts in `bench/`.\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def _memory_gib() -> float:
    meminfo = Path("/proc/meminfo").read_text()
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    return int(match.group(1)) / 1024 / 1024 if match else 0.0
