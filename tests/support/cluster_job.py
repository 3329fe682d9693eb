"""A lakesync command run under spark-submit on the test's Spark standalone cluster."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakesync.config import LakesyncSettings
from tests.support.config_file import write_toml
from tests.support.pipeline import Pipeline
from tests.support.spark_cluster import SparkCluster

# Secrets travel as files (LAKESYNC_SECRETS_DIR), as in the containers; never in the TOML file.
SECRET_FILES = {
    "LAKESYNC_POSTGRES__PASSWORD": ("postgres", "password"),
    "LAKESYNC_S3__SECRET_ACCESS_KEY": ("s3", "secret_access_key"),
}


@dataclass
class ClusterJob:
    """A table mapping on S3 and a way to run lakesync commands for it on the cluster."""

    pipeline: Pipeline
    cluster: SparkCluster
    config: Path
    env: dict[str, str]
    command: Callable[[list[str]], list[str]]
    secrets: list[str]

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                self.command(list(args)), env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def run(self, *args: str, log: Path, timeout_s: float = 300) -> int:
        """Run `lakesync ARGS` under spark-submit; its exit code. No secret may reach its output."""
        job = self.start(*args, log=log)
        try:
            code = job.wait(timeout_s)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, 9)
        output = log.read_text(errors="replace")
        assert not [s for s in self.secrets if s in output], f"a secret reached the output of {args}"
        if code not in (0, 4):
            print(f"lakesync {' '.join(args)} exited {code}; last lines of {log}:\n{output[-3000:]}")
        return code


def write_secrets(settings: LakesyncSettings, directory: Path) -> list[str]:
    """The secrets as files in `directory` (LAKESYNC_SECRETS_DIR); their values."""
    directory.mkdir(mode=0o700)
    values = []
    for name, (section, key) in SECRET_FILES.items():
        secret = getattr(getattr(settings, section), key)
        values.append(secret.get_secret_value())
        (directory / name).write_text(values[-1] + "\n")
    return values


def write_job_config(settings: LakesyncSettings, path: Path) -> Path:
    """The job's TOML file: every setting but the secrets (masked by model_dump; they come from the files)."""
    data: dict[str, Any] = settings.model_dump(mode="json", exclude={"lag"})
    for values in [v for v in data.values() if isinstance(v, dict)]:
        for key in [k for k, v in values.items() if v == "**********" or v == {}]:
            del values[key]
    return write_toml(path, data)
