"""One Spark standalone cluster per session (a master and two workers), and lakesync jobs submitted
to it with spark-submit: Delta table and state_dir on the session's S3 server, secrets as files."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.spark import s3a_jars_dir, spark_jars
from deploy.embedded_stack import EmbeddedStack
from deploy.spark.python_env import build_wheel, executor_env_archive
from lakesync.config import LakesyncSettings, TableMapping
from tests.support.pipeline import Pipeline
from tests.support.spark_cluster import SparkCluster

# Secrets travel as files (LAKESYNC_SECRETS_DIR), as in the containers; never in the TOML file.
SECRET_FILES = {
    "LAKESYNC_POSTGRES__PASSWORD": ("postgres", "password"),
    "LAKESYNC_S3__SECRET_ACCESS_KEY": ("s3", "secret_access_key"),
}


@pytest.fixture(scope="session")
def spark_cluster(scratch_root: Path) -> Iterator[SparkCluster]:
    cluster = SparkCluster(scratch_root / "spark-cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def lakesync_wheel(scratch_root: Path) -> Path:
    return build_wheel(scratch_root / "wheel")


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


@pytest.fixture
def cluster_job(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    embedded_stack: EmbeddedStack,
    spark_cluster: SparkCluster,
    lakesync_wheel: Path,
    unique_name: str,
    tmp_path: Path,
) -> Callable[..., ClusterJob]:
    def make(**table_fields: Any) -> ClusterJob:
        s3 = embedded_stack.s3
        table = TableMapping(
            name=unique_name,
            source_path=s3.url(unique_name, "lake", "people"),
            target_table=unique_name,
            topic=f"{unique_name}.changes",
            key_columns=["id"],
            **table_fields,
        )
        settings = make_settings(
            tables=[table],
            state_dir=s3.url(unique_name, "state"),
            consumer={"group_id": f"g-{unique_name}", "batch_max_wait_s": 0.2, "session_timeout_s": 6.0},
            spark={"ui_enabled": False, "shuffle_partitions": 2, "default_parallelism": 2},
        )
        secrets_dir = tmp_path / "secrets"
        secrets = _write_secrets(settings, secrets_dir)
        config = _write_config(settings, tmp_path / "lakesync.toml")
        env = {
            **os.environ,
            "LAKESYNC_CONFIG": str(config),
            "LAKESYNC_SECRETS_DIR": str(secrets_dir),
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
        jars, s3a = spark_jars(settings.spark.jars_dir), s3a_jars_dir(settings.s3.jars_dir)

        def command(args: list[str]) -> list[str]:
            return spark_cluster.submit(
                args, wheel=lakesync_wheel, archive=executor_env_archive(), jars=jars, s3a_jars=s3a
            )

        return ClusterJob(Pipeline(spark, settings, table), spark_cluster, config, env, command, secrets)

    return make


def _write_secrets(settings: LakesyncSettings, directory: Path) -> list[str]:
    directory.mkdir(mode=0o700)
    values = []
    for name, (section, key) in SECRET_FILES.items():
        secret = getattr(getattr(settings, section), key)
        values.append(secret.get_secret_value())
        (directory / name).write_text(values[-1] + "\n")
    return values


def _write_config(settings: LakesyncSettings, path: Path) -> Path:
    """The TOML file of the job: everything but the secrets (they come from the files)."""
    data = settings.model_dump(mode="json", exclude={"lag"})
    tables = data.pop("tables")
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in [(k, v) for k, v in data.items() if isinstance(v, dict)]:
        lines.append(f"[{section}]")
        lines += [
            f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None and v != {} and v != "**********"
        ]
    for table in tables:
        lines.append("[[tables]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if v is not None and v != []]
    path.write_text("\n".join(lines) + "\n")
    return path
