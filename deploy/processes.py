"""Small process and port helpers shared by the embedded servers (Kafka, PostgreSQL, SeaweedFS)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from deploy.errors import EmbeddedServiceError


def free_port(preferred: int | None = None) -> int:
    """A loopback TCP port nobody listens on; `preferred` if it is free (stable restarts)."""
    if preferred and port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def tcp_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages about a server that died."""
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_until_ready(
    what: str,
    probe: Callable[[], bool],
    *,
    alive: Callable[[], bool],
    log: Path,
    timeout_s: float,
) -> None:
    """Poll `probe` until it answers True; fail at once with the log's tail if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise EmbeddedServiceError(f"{what} exited during start-up; last lines of {log}:\n{tail(log)}")
        if probe():
            return
        time.sleep(0.25)
    raise EmbeddedServiceError(f"{what} was not ready after {timeout_s:.0f} s; last lines of {log}:\n{tail(log)}")


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state != "Z"


def pid_runs(pid: int, marker: str) -> bool:
    """True if `pid` is alive and its command line contains `marker` (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return pid_alive(pid) and marker in cmdline


def terminate(pid: int, *, timeout_s: float = 30.0) -> None:
    """SIGTERM, wait up to timeout_s, then SIGKILL; reaps the process if it is our child."""
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout_s):
        return
    _signal(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10.0):
        raise EmbeddedServiceError(f"process {pid} survived SIGKILL")


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: init reaps it


class DaemonServer:
    """A server started in its own session (it outlives `lakesync up` and ignores the terminal's
    ^C), or found again by the pid an earlier start recorded.

    Subclasses are dataclasses with `pid` and `_process` fields and say which command-line
    `marker` identifies their process (guarding against a reused pid) and how long a clean
    shutdown may take.
    """

    marker: ClassVar[str]
    stop_timeout_s: ClassVar[float] = 30.0
    pid: int | None
    _process: subprocess.Popen[bytes] | None

    def running(self) -> bool:
        if self._process is not None:
            # Our own child: poll() is exact, and /proc's cmdline is Python's until exec happens.
            return self._process.poll() is None
        return self.pid is not None and pid_runs(self.pid, self.marker)

    def stop(self) -> None:
        """SIGTERM (the server shuts down cleanly), SIGKILL if it hangs."""
        if self.running() and self.pid is not None:
            terminate(self.pid, timeout_s=self.stop_timeout_s)
        if self._process is not None:
            self._process.wait(timeout=5)
        self.pid = None
        self._process = None

    def _spawn(self, command: list[str], log_file: Path, cwd: Path | None = None) -> None:
        with log_file.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self._process.pid
