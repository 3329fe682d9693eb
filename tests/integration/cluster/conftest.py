"""One Spark standalone cluster per session (a master and two workers), and lakesync jobs submitted
to it with spark-submit: Delta table and state_dir on the session's S3 server, secrets as files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.spark import s3a_jars_dir, spark_jars
from deploy.embedded_stack import EmbeddedStack
from deploy.spark.python_env import build_wheel, executor_env_archive
from lakesync.config import LakesyncSettings, TableMapping
from tests.support.cluster_job import ClusterJob, write_job_config, write_secrets
from tests.support.pipeline import Pipeline
from tests.support.spark_cluster import SparkCluster


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
        secrets = write_secrets(settings, secrets_dir)
        config = write_job_config(settings, tmp_path / "lakesync.toml")
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
