"""One writer of a table's stream state at a time: `lakesync stream` or `lakesync rebuild`.

An exclusive, non-blocking `flock` on `<state_dir>/<table>/stream.lock`, held for as long as the
process works on the table. The kernel releases it when the process ends, however it ends, so a
SIGKILLed job never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from streaming.publisher.errors import TableBusyError


class TableLock:
    def __init__(self, table_state: Path, table: str, purpose: str) -> None:
        self.path = table_state / "stream.lock"
        self.table = table
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> TableLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise TableBusyError(f"table {self.table!r} is in use by {holder}; stop it before {self.purpose}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.purpose} (pid {os.getpid()})".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> TableLock:
        return self.acquire()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()
