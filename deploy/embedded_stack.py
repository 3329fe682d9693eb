"""`lakesync up` / `lakesync down`: the embedded Kafka broker and PostgreSQL server together, and
with `--with-s3` an S3-compatible server (SeaweedFS) for Delta tables and state on object storage.

All state lives in one directory (`home`, default `.lakesync/embedded`): each server's data and
log, `services.json` (ports and pids, so a later `down` finds them) and `lakesync.toml`, a config
file that points lakesync at these servers. The pytest session fixtures use this same code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from deploy.embedded_kafka import KafkaBroker
from deploy.embedded_postgres import DATABASE, SUPERUSER, PostgresServer
from deploy.embedded_s3 import S3Server

DEFAULT_HOME = Path(".lakesync/embedded")


@dataclass
class EmbeddedStack:
    home: Path
    kafka: KafkaBroker
    postgres: PostgresServer
    s3: S3Server

    @classmethod
    def at(cls, home: Path = DEFAULT_HOME) -> EmbeddedStack:
        """The stack rooted at `home`, with ports/pids of a previous `up` if it recorded any."""
        home = home.absolute()
        stack = cls(home, KafkaBroker(home / "kafka"), PostgresServer(home / "postgres"), S3Server(home / "s3"))
        stack._load_state()
        return stack

    @property
    def state_file(self) -> Path:
        return self.home / "services.json"

    @property
    def config_file(self) -> Path:
        return self.home / "lakesync.toml"

    def up(self, *, with_s3: bool = False) -> None:
        """Start whatever is not running, wait for readiness, record state and config."""
        self.home.mkdir(parents=True, exist_ok=True)
        # The PostgreSQL server user must be able to reach its directory below ours.
        self.home.chmod(0o755)
        try:
            self.postgres.start()
            self.kafka.start()
            if with_s3:
                self.s3.start()
        except BaseException:
            self.down()
            raise
        self._save_state()
        self._write_config()

    def down(self) -> None:
        """Stop both servers (data is kept; `up` starts them again on the same ports if free)."""
        self.kafka.stop()
        self.postgres.stop()
        self.s3.stop()
        self._save_state()

    def status(self) -> dict[str, object]:
        return {
            "kafka": {"running": self.kafka.running(), "bootstrap_servers": self.kafka.bootstrap_servers},
            "postgres": {"running": self.postgres.running(), "port": self.postgres.port},
            "s3": {"running": self.s3.running(), "endpoint": self.s3.endpoint if self.s3.port else None},
            "config_file": str(self.config_file),
        }

    def settings_overrides(self) -> dict[str, dict[str, object]]:
        """Keyword arguments for load_settings() that point at these servers (S3 when it runs)."""
        s3 = {"s3": self.s3.settings()} if self.s3.running() else {}
        return s3 | {
            "kafka": {"bootstrap_servers": self.kafka.bootstrap_servers, "topic_partitions": 3},
            "postgres": {
                "host": "127.0.0.1",
                "port": self.postgres.port,
                "dbname": DATABASE,
                "user": SUPERUSER,
                "password": self.postgres.password,
                "sslmode": "disable",
            },
        }

    def _load_state(self) -> None:
        if not self.state_file.exists():
            return
        state = json.loads(self.state_file.read_text())
        kafka, postgres = state.get("kafka", {}), state.get("postgres", {})
        self.kafka.port = kafka.get("port", 0)
        self.kafka.controller_port = kafka.get("controller_port", 0)
        self.kafka.pid = kafka.get("pid")
        self.postgres.port = postgres.get("port", 0)
        self.postgres.password = postgres.get("password", "")
        self.postgres.pid = postgres.get("pid")
        s3 = state.get("s3", {})
        self.s3.port = s3.get("port", 0)
        self.s3.pid = s3.get("pid")
        self.s3.internal_ports = s3.get("internal_ports", {})
        self.s3.access_key_id = s3.get("access_key_id", "")
        self.s3.secret_access_key = s3.get("secret_access_key", "")

    def _save_state(self) -> None:
        state = {
            "kafka": {"port": self.kafka.port, "controller_port": self.kafka.controller_port, "pid": self.kafka.pid},
            "postgres": {"port": self.postgres.port, "password": self.postgres.password, "pid": self.postgres.pid},
            "s3": {
                "port": self.s3.port,
                "pid": self.s3.pid,
                "internal_ports": self.s3.internal_ports,
                "access_key_id": self.s3.access_key_id,
                "secret_access_key": self.s3.secret_access_key,
            },
        }
        _write_private(self.state_file, json.dumps(state, indent=2))

    def _write_config(self) -> None:
        overrides = self.settings_overrides()
        lines = ["# Written by `lakesync up`: points lakesync at the embedded servers.", ""]
        if self.s3.running():
            lines += [
                f'# Object storage: state_dir = "{self.s3.url("state")}", source_path = "{self.s3.url("lake", "<table>")}"',
                "",
            ]
        for section, values in overrides.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
            lines.append("")
        _write_private(self.config_file, "\n".join(lines))


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: these files hold the database password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
