"""A table's stream state has one writer at a time (a PostgreSQL advisory lock), a dead holder frees
it, and a holder whose session ends learns that it lost the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import psycopg
import pytest

from lakesync.config import LakesyncSettings
from streaming.publisher.table_lock import TableBusyError, TableLock, TableLockLostError

pytestmark = pytest.mark.integration


def lock(settings: LakesyncSettings, target: str, purpose: str, **kwargs: Any) -> TableLock:
    return TableLock(settings.postgres, target, "people", purpose, **kwargs)


def test_second_holder_is_refused_naming_the_first(settings: LakesyncSettings, unique_name: str) -> None:
    with (
        lock(settings, unique_name, "streaming"),
        pytest.raises(
            TableBusyError, match=r"'people' is in use by streaming \(pid \d+ on .+\); stop it before rebuilding"
        ),
    ):
        lock(settings, unique_name, "rebuilding").acquire()
    lock(settings, unique_name, "rebuilding").acquire().release()


def test_a_killed_holder_leaves_no_stale_lock(settings: LakesyncSettings, unique_name: str) -> None:
    script = (
        "import json, sys, time; from lakesync.config import PostgresSettings;"
        "from streaming.publisher.table_lock import TableLock;"
        "TableLock(PostgresSettings(**json.loads(sys.stdin.readline())), sys.argv[1], 'people',"
        " 'streaming').acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, unique_name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write(json.dumps(_postgres(settings)) + "\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(TableBusyError):
        lock(settings, unique_name, "rebuilding").acquire()
    holder.kill()
    holder.wait()
    lock(settings, unique_name, "rebuilding").acquire().release()


def test_a_holder_whose_session_ends_learns_it_lost_the_lock(settings: LakesyncSettings, unique_name: str) -> None:
    """PostgreSQL drops the lock with the session; the holder must not go on as if it held it."""
    lost = threading.Event()
    held = lock(settings, unique_name, "streaming", check_interval_s=0.2, on_lost=lost.set).acquire()
    try:
        with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
                (f"lakesync streaming (pid {os.getpid()} %",),
            )
        assert lost.wait(10), "the watchdog never noticed"
        with pytest.raises(TableLockLostError, match="stopped before streaming went further"):
            held.verify()
        lock(settings, unique_name, "rebuilding").acquire().release()  # the lock is free for others
    finally:
        held.release()


def _postgres(settings: LakesyncSettings) -> dict[str, Any]:
    """The PostgreSQL settings with the password in clear, for a child process."""
    data = settings.postgres.model_dump(mode="json")
    data["password"] = settings.postgres.password.get_secret_value() if settings.postgres.password else None
    return data
