"""A real PostgreSQL server from the Debian packages, for `lakesync up`, the demo and the tests.

`initdb` and `pg_ctl` refuse to run as root, so when we are root they run as the `postgres`
user (runuser) on a data directory that user owns. The server listens on loopback TCP only;
its Unix socket lives in the state directory so nothing under /var/run is needed.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.errors import EmbeddedServiceError
from deploy.processes import free_port, pid_runs, tcp_open, wait_until_ready
from lakesync.errors import SetupError

SERVER_USER = "postgres"
SUPERUSER = "lakesync"
DATABASE = "lakesync"


def pg_bindir() -> Path:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    override = os.environ.get("LAKESYNC_PG_BINDIR")
    if override:
        return Path(override)
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if not candidates:
        raise SetupError("PostgreSQL server binaries not found; run `bash deploy/setup.sh`")
    return max(candidates, key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))


@dataclass
class PostgresServer:
    """One PostgreSQL cluster under `home`; the superuser `lakesync` has a generated password."""

    home: Path
    port: int = 0
    password: str = ""
    pid: int | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    def start(self, timeout_s: float = 60.0) -> None:
        """initdb on first use, start the server and wait until `SELECT 1` answers."""
        if self.running():
            return
        self._prepare_home()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self.port = free_port(self.port)
        self._pg_ctl(
            "start",
            "-w",
            "-t",
            str(int(timeout_s)),
            "-l",
            str(self.log_file),
            "-o",
            f"-p {self.port} -k {self.socket_dir}",
        )
        self.pid = self._postmaster_pid()
        wait_until_ready(
            f"PostgreSQL on port {self.port}",
            self._select_one,
            alive=self.running,
            log=self.log_file,
            timeout_s=timeout_s,
        )
        self._ensure_database()

    def stop(self) -> None:
        """Fast shutdown: active transactions roll back, the server exits cleanly."""
        if self.running():
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
        self.pid = None

    def running(self) -> bool:
        return self.pid is not None and pid_runs(self.pid, "postgres")

    def conninfo_kwargs(self, dbname: str = DATABASE) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": SUPERUSER,
            "password": self.password,
            "dbname": dbname,
            "connect_timeout": 5,
        }

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if not self.password:
            self.password = secrets.token_urlsafe(18)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SERVER_USER)
            for path in (self.home, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self._check_reachable_by_server_user()

    def _check_reachable_by_server_user(self) -> None:
        # The postgres user must traverse every parent directory (e.g. pytest's 0700 temp root).
        probe = subprocess.run(["runuser", "-u", SERVER_USER, "--", "test", "-w", str(self.home)], capture_output=True)
        if probe.returncode != 0:
            raise EmbeddedServiceError(
                f"user {SERVER_USER!r} cannot write {self.home}: give every parent directory "
                "o+x (or choose a state directory under /tmp or the project)"
            )

    def _initdb(self) -> None:
        pwfile = self.home / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SERVER_USER)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        pwfile.chmod(0o600)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "--encoding=UTF8",
                "--no-locale",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_SERVER_SETTINGS)

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(pg_bindir() / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/tmp")
        if result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-30:])
            raise EmbeddedServiceError(
                f"{tool} {' '.join(args[:1])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{log_tail}"
            )

    def _postmaster_pid(self) -> int:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError) as exc:
            raise EmbeddedServiceError(f"PostgreSQL started but {pid_file} is unreadable") from exc

    def _select_one(self) -> bool:
        if not tcp_open(self.port):
            return False
        import psycopg

        try:
            with psycopg.connect(**self.conninfo_kwargs("postgres")) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(**self.conninfo_kwargs("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


# Loopback only; enough connections for Spark's parallel JDBC plus a consumer pool or two.
_SERVER_SETTINGS = """
# --- lakesync embedded server ---
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 256MB
max_wal_size = 2GB
log_min_messages = warning
log_line_prefix = '%m [%p] '
"""
