"""A table's stream state has one writer at a time, and a dead holder frees it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streaming.publisher.errors import TableBusyError
from streaming.publisher.table_lock import TableLock


def test_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    with (
        TableLock(tmp_path, "people", "streaming"),
        pytest.raises(TableBusyError, match=r"'people' is in use by streaming \(pid \d+\); stop it before rebuilding"),
    ):
        TableLock(tmp_path, "people", "rebuilding").acquire()
    TableLock(tmp_path, "people", "rebuilding").acquire().release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from streaming.publisher.table_lock import TableLock;"
                f"TableLock(Path({str(tmp_path)!r}), 'people', 'streaming').acquire(); print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(TableBusyError):
        TableLock(tmp_path, "people", "rebuilding").acquire()
    holder.kill()
    holder.wait()
    TableLock(tmp_path, "people", "rebuilding").acquire().release()
