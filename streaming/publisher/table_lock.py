"""One writer of a table's stream state at a time: `lakesync stream` or `lakesync rebuild`.

A PostgreSQL session-level advisory lock (`pg_try_advisory_lock`) on the stream's target, taken
on a connection of its own and held for as long as the process works on the table. PostgreSQL
is where the state and progress live, so the lock works wherever the job runs and whatever store
its checkpoint is on (S3 offers no exclusive create). PostgreSQL releases the lock when the
session ends, however it ends: a SIGKILLed job never leaves a stale lock behind.

The other side of that: if the lock's connection drops (PostgreSQL restarted, a network cut, the
backend terminated), the lock is gone and another process may take it. A watchdog thread runs a
query on the connection every `check_interval_s` (TCP keepalives catch a silent peer); when it
fails, the lock counts as lost and `on_lost` is called once. The stream stops then (a restart
takes the lock again, or is refused while a rebuild holds it) and a rebuild checks the lock
before it swaps. It never re-takes a lock on its own: it cannot know what another holder did in
between.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable
from types import TracebackType

import psycopg

from lakesync.config import PostgresSettings
from lakesync.logs import get_logger
from streaming.publisher.errors import TableBusyError, TableLockLostError

__all__ = ["TableBusyError", "TableLock", "TableLockLostError", "lock_key"]

log = get_logger(__name__)
# Keepalives: a connection whose peer vanished without a FIN is found dead in ~20 s, not hours.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 2}


def lock_key(target: str) -> int:
    """The advisory lock's bigint for a stream target: stable across processes and versions."""
    digest = hashlib.blake2b(f"lakesync.stream:{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class TableLock:
    def __init__(
        self,
        pg: PostgresSettings,
        target: str,
        table: str,
        purpose: str,
        *,
        check_interval_s: float = 5.0,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.pg = pg
        self.target = target
        self.table = table
        self.purpose = purpose
        self.check_interval_s = check_interval_s
        self.on_lost = on_lost
        self._conn: psycopg.Connection | None = None
        self._use = threading.Lock()  # the watchdog and verify() share the connection
        self._released = threading.Event()
        self._lost = threading.Event()
        self._watchdog: threading.Thread | None = None

    def acquire(self) -> TableLock:
        conn = self._connect()
        taken = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(self.target),)).fetchone()
        if not taken or not taken[0]:
            holder = _holder(conn, lock_key(self.target))
            conn.close()
            raise TableBusyError(f"table {self.table!r} is in use by {holder}; stop it before {self.purpose}")
        self._conn = conn
        self._watchdog = threading.Thread(target=self._watch, name=f"table-lock-{self.table}", daemon=True)
        self._watchdog.start()
        return self

    def verify(self) -> None:
        """Raise TableLockLostError unless the lock's session is still alive (hence the lock held)."""
        if self._lost.is_set() or not self._alive():
            self._mark_lost()
            raise TableLockLostError(
                f"table {self.table!r}: the lock's PostgreSQL connection dropped, so another process may "
                f"have taken the table; stopped before {self.purpose} went further"
            )

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def release(self) -> None:
        self._released.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=self.check_interval_s + 5)
            self._watchdog = None
        if self._conn is not None:
            with self._use:
                self._conn.close()  # ending the session drops the lock
            self._conn = None

    def __enter__(self) -> TableLock:
        return self.acquire()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()

    def _connect(self) -> psycopg.Connection:
        # The holder names itself in pg_stat_activity, which is how a refused process names it.
        name = f"lakesync {self.purpose} (pid {os.getpid()} on {socket.gethostname()})"[:63]
        kwargs = self.pg.connection_kwargs() | _KEEPALIVES | {"application_name": name}
        return psycopg.connect(**kwargs, autocommit=True)

    def _watch(self) -> None:
        while not self._released.wait(self.check_interval_s):
            if not self._alive():
                self._mark_lost()
                return

    def _alive(self) -> bool:
        with self._use:
            if self._conn is None or self._conn.closed:
                return False
            try:
                self._conn.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True

    def _mark_lost(self) -> None:
        if self._lost.is_set() or self._released.is_set():
            return
        self._lost.set()
        log.error("table lock lost", table=self.table, purpose=self.purpose)
        if self.on_lost is not None:
            self.on_lost()


def _holder(conn: psycopg.Connection, key: int) -> str:
    """Who holds the lock, by the application name it connected with (pg_locks splits the bigint)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid",
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    ).fetchone()
    name = str(row[0]) if row and row[0] else ""
    return name.removeprefix("lakesync ") if name.startswith("lakesync ") else "another process"
