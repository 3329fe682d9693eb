"""A real S3-compatible server, SeaweedFS (`weed server -s3`), for `lakesync up --with-s3` and the tests.

One process runs SeaweedFS's master, a volume server, a filer and the S3 gateway, all on free
loopback ports, with its data under `home`. The binary is built from SeaweedFS's Go module by
setup (deploy/setup.sh, cached in `$LAKESYNC_CACHE_DIR/bin/weed`); nothing is fetched here.

The gateway requires signed requests: one identity, with an access key and a secret generated on
first start and kept in `home/s3.json` (mode 0600). The bucket lakesync uses is created through
`weed shell`, which talks to the master and the filer rather than to the signed S3 API.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from deploy.errors import EmbeddedServiceError
from deploy.processes import DaemonServer, free_port, tcp_open, wait_until_ready
from lakesync.config import default_cache_dir
from lakesync.errors import SetupError

MARKER = "weed"
BUCKET = "lakesync"


def weed_executable() -> Path:
    found = Path(os.environ.get("LAKESYNC_WEED", default_cache_dir() / "bin" / "weed"))
    if not found.is_file():
        raise SetupError(f"no SeaweedFS binary at {found}; run `bash deploy/setup.sh` to build it")
    return found


@dataclass
class S3Server(DaemonServer):
    """SeaweedFS with its S3 gateway; `home` holds its data, identities and log."""

    marker: ClassVar[str] = MARKER
    stop_timeout_s: ClassVar[float] = 20.0

    home: Path
    port: int = 0
    pid: int | None = None
    access_key_id: str = ""
    secret_access_key: str = ""
    # master, volume, filer: HTTP and gRPC each, picked free at start (SeaweedFS's defaults collide).
    internal_ports: dict[str, int] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the servers, wait until the S3 port answers, create the bucket."""
        if self.running():
            return
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        self._ensure_identity()
        self._pick_ports()
        self._launch()
        wait_until_ready(
            f"SeaweedFS S3 gateway on port {self.port}",
            lambda: tcp_open(self.port),
            alive=self.running,
            log=self.log_file,
            timeout_s=timeout_s,
        )
        self._create_bucket(timeout_s)

    def settings(self) -> dict[str, object]:
        """The `[s3]` section that points lakesync at this server."""
        return {
            "endpoint": self.endpoint,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "path_style_access": True,
        }

    def url(self, *parts: str) -> str:
        """`s3a://lakesync/<parts>`: a location in the bucket."""
        return "/".join([f"s3a://{BUCKET}", *(p.strip("/") for p in parts)])

    def _ensure_identity(self) -> None:
        if not self.access_key_id:
            self.access_key_id = "lakesync" + secrets.token_hex(6)
            self.secret_access_key = secrets.token_urlsafe(30)
        identities = {
            "identities": [
                {
                    "name": "lakesync",
                    "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        _write_private(self.home / "s3.json", json.dumps(identities))

    def _pick_ports(self) -> None:
        self.port = free_port(self.port)
        taken = {self.port}
        for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3.grpc"):
            port = free_port(self.internal_ports.get(name))
            while port in taken:
                port = free_port()
            self.internal_ports[name] = port
            taken.add(port)

    def _command(self) -> list[str]:
        ports = self.internal_ports
        return [
            str(weed_executable()),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.home / 'data'}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master.grpc']}",
            "-master.telemetry=false",  # no traffic leaves this machine
            "-master.volumeSizeLimitMB=256",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume.grpc']}",
            "-volume.max=0",  # as many volumes as the disk holds
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer.grpc']}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={ports['s3.grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.home / 's3.json'}",
        ]

    def _launch(self) -> None:
        self._spawn(self._command(), self.log_file, cwd=self.home)

    def _create_bucket(self, timeout_s: float) -> None:
        """`s3.bucket.create` in `weed shell`, retried while the filer is still starting."""
        # SeaweedFS addresses name the gRPC port after a dot when it is not the HTTP port + 10000.
        master = f"127.0.0.1:{self.internal_ports['master']}.{self.internal_ports['master.grpc']}"
        command = [str(weed_executable()), "shell", f"-master={master}"]
        script = f"s3.bucket.create -name {BUCKET}\ns3.bucket.list\n"
        deadline = time.monotonic() + timeout_s
        while True:
            result = subprocess.run(command, input=script, capture_output=True, text=True, timeout=timeout_s)
            if _lists_bucket(result.stdout):
                return
            if time.monotonic() > deadline or not self.running():
                raise EmbeddedServiceError(
                    f"could not create bucket {BUCKET!r} in SeaweedFS:\n{result.stdout[-1500:]}{result.stderr[-1500:]}"
                )
            time.sleep(0.5)


def _lists_bucket(shell_output: str) -> bool:
    """`s3.bucket.list` prints one bucket a line, its name first."""
    return any(line.split()[:1] == [BUCKET] for line in shell_output.splitlines())


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
