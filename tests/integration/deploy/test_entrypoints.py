"""The images' commands, run on this machine against the embedded Kafka and PostgreSQL.

The commands are read from the Dockerfiles and the CronJob, not retyped: what the containers would
start is what runs here. Only paths that exist in the image alone are mapped to this checkout
(virtualenv, driver script, config and state locations, ports), and spark-submit gets
`--master local[2] --jars <setup's jars>` where the image has Spark's jars/ directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from connectors.consumer_position import end_offsets
from deploy.embedded_stack import EmbeddedStack
from deploy.processes import free_port
from lakesync.cli import app
from lakesync.config import LakesyncSettings, TableMapping, load_settings
from streaming.publisher.job import StreamJob
from tests.support.config_file import write_toml
from tests.support.consumer_run import run_until_caught_up
from tests.support.deploy_files import DEPLOY, ROOT, Stage, dockerfile_stages
from tests.support.lock_files import locked_names, runtime_pins
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
# Import names of the distributions the consumer image leaves out (absent from its lock file).
IMPORT_NAMES = {"pyspark": "pyspark", "delta-spark": "delta", "deltalake": "deltalake", "pandas": "pandas"}


def image(name: str) -> Stage:
    return dockerfile_stages(DEPLOY / f"docker/{name}.Dockerfile")[-1]


def local_executable(command: str) -> str:
    """The image runs console scripts from /opt/lakesync/bin (on PATH): here, this virtualenv's."""
    path = VENV_BIN / ("python" if command == "python" else command)
    assert path.exists(), f"{command} is not installed in {VENV_BIN}"
    return str(path)


def image_env(stage: Stage, **local: str) -> dict[str, str]:
    """This environment less LAKESYNC_*, plus the image's ENV with its paths mapped to `local`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESYNC_")}
    declared = stage.env()
    missing = set(local) - set(declared) - {"LAKESYNC_SECRETS_DIR", "SPARK_CONF_DIR"}
    assert not missing, f"not in the image's ENV: {missing}"
    for key, value in declared.items():
        env[key] = local.get(key, value)
    env.update(local)
    env["PATH"] = f"{VENV_BIN}:{os.environ['PATH']}"
    return env


def base_config(stack: EmbeddedStack, table: TableMapping, *, with_password: bool) -> dict[str, Any]:
    services = stack.settings_overrides()
    postgres = dict(services["postgres"])
    if not with_password:
        postgres.pop("password")
    return {
        "kafka": services["kafka"],
        "postgres": postgres,
        "spark": {"ui_enabled": False, "shuffle_partitions": 2},
        "consumer": {"group_id": f"g-{table.name}", "batch_max_wait_s": 0.2, "session_timeout_s": 6.0},
        "lag": {"window_s": 10.0, "sample_interval_s": 2.0},
        "tables": [
            table.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
            | {"name": table.name, "target_table": table.target_table, "key_columns": table.key_columns}
        ],
    }


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def delta_table(spark: Any, path: Path, rows: int) -> None:
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id BIGINT, name STRING) USING delta "
        "TBLPROPERTIES (delta.enableChangeDataFeed = true)"
    )
    spark.sql(f"INSERT INTO delta.`{path}` VALUES " + ",".join(f"({i}, 'n{i}')" for i in range(rows)))


def test_consumer_image_command_starts_gets_ready_and_stops_on_sigterm(
    embedded_stack: EmbeddedStack, unique_name: str, tmp_path: Path
) -> None:
    """ENTRYPOINT+CMD of the consumer image with its ENV, the password from a secret file and only
    the packages the image installs: ready on /readyz, healthy by its HEALTHCHECK, SIGTERM -> 0."""
    stage = image("consumer")
    table = TableMapping(name=unique_name, source_path="/lake/x", target_table=unique_name, key_columns=["id"])
    config = write_toml(tmp_path / "lakesync.toml", base_config(embedded_stack, table, with_password=False))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "LAKESYNC_POSTGRES__PASSWORD").write_text(embedded_stack.postgres.password + "\n")
    # What the image leaves out must not be needed: imports of it fail, and no JVM can start.
    assert runtime_pins() - locked_names(DEPLOY / "requirements/consumer.txt") == set(IMPORT_NAMES)
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(
        "import sys\n"
        f"_ABSENT = {sorted(IMPORT_NAMES.values())!r}\n"
        "class _NotInTheImage:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in _ABSENT:\n"
        "            raise ImportError(f'{name} is not installed in the consumer image')\n"
        "sys.meta_path.insert(0, _NotInTheImage())\n"
    )
    port = free_port()
    env = image_env(
        stage, LAKESYNC_CONFIG=str(config), LAKESYNC_CONSUMER__HTTP_PORT=str(port), LAKESYNC_SECRETS_DIR=str(secrets)
    )
    env.update(PYTHONPATH=str(guard), SPARK_HOME="/nonexistent", JAVA_HOME="/nonexistent")
    entrypoint = stage.exec_form("ENTRYPOINT")
    command = [local_executable(entrypoint[0]), *entrypoint[1:], *stage.exec_form("CMD")]
    log_path = tmp_path / "consume.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: process.poll() is not None or http_status(port, "/readyz") == 200, 90, "/readyz 200")
        assert process.poll() is None, log_path.read_text()[-3000:]
        health = json.loads(stage.last("HEALTHCHECK").split("CMD", 1)[1])  # type: ignore[union-attr]  # the consumer image has a HEALTHCHECK (tests/unit/deploy)
        probe = subprocess.run([local_executable(health[0]), *health[1:]], env=env, capture_output=True, timeout=30)
        assert probe.returncode == 0, probe.stderr
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, log_path.read_text()[-3000:]
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
    assert '"consumer stopped"' in log_path.read_text()


def test_spark_image_command_streams_a_delta_table_once(
    spark: Any, embedded_stack: EmbeddedStack, settings: LakesyncSettings, unique_name: str, tmp_path: Path
) -> None:
    """spark-submit + the driver script of the Spark image, with `stream --once`: a Delta table's
    rows reach Kafka. spark-defaults.conf uses ${env:...} as the Kubernetes ConfigMap does."""
    stage = image("spark")
    source = tmp_path / "lake" / unique_name
    delta_table(spark, source, rows=5)
    table = TableMapping(name=unique_name, source_path=str(source), target_table=unique_name, key_columns=["id"])
    config = write_toml(tmp_path / "lakesync.toml", base_config(embedded_stack, table, with_password=True))
    conf_dir = tmp_path / "spark-conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text("spark.driver.host ${env:LAKESYNC_TEST_DRIVER_HOST}\n")
    import pyspark

    env = image_env(
        stage,
        LAKESYNC_CONFIG=str(config),
        LAKESYNC_STATE_DIR=str(tmp_path / "state"),
        LAKESYNC_STREAM__HTTP_PORT=str(free_port()),
        SPARK_CONF_DIR=str(conf_dir),
        SPARK_HOME=str(Path(pyspark.__file__).parent),
        PYSPARK_PYTHON=sys.executable,
        JAVA_HOME=os.environ.get("JAVA_HOME", ""),
    )
    env["LAKESYNC_TEST_DRIVER_HOST"] = "127.0.0.1"
    if not env["JAVA_HOME"]:
        del env["JAVA_HOME"]  # the machine's java on PATH
    entrypoint, cmd = stage.exec_form("ENTRYPOINT"), stage.exec_form("CMD")
    assert entrypoint[0] == "spark-submit"
    driver = ROOT / "deploy/spark/driver.py"  # COPY'd to entrypoint[-1] in the image
    jars = ",".join(str(j) for j in sorted(settings.spark.jars_dir.glob("*.jar")))
    command = [
        local_executable("spark-submit"),
        "--master",
        "local[2]",
        "--jars",
        jars,
        *entrypoint[1:-1],
        str(driver),
        *cmd,
        "--once",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = [json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line.startswith('{"')]
    published = [e for e in events if e.get("event") == "batch published"]
    assert sum(e["upserts"] for e in published) == 5, events
    loaded = load_settings(config)
    assert sum(end_offsets(loaded, table.topic_name).values()) == 5


def test_reconcile_cronjob_command_exits_0_in_sync_and_4_on_drift(
    spark: Any, embedded_stack: EmbeddedStack, unique_name: str, tmp_path: Path
) -> None:
    """The CronJob's arguments to the Spark image (`reconcile --table ...`), run as lakesync's
    command line in this process (its SparkSession): 0 when in sync, 4 (the failing Job) on drift."""
    cronjob = yaml.safe_load((DEPLOY / "k8s/reconcile-cronjob.yaml").read_text())
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = list(container["args"])
    assert args[:2] == ["reconcile", "--table"]
    args[2] = unique_name  # the CronJob names its table; this test's table stands in for it

    source = tmp_path / "lake" / unique_name
    delta_table(spark, source, rows=8)
    table = TableMapping(
        name=unique_name,
        source_path=str(source),
        target_table=unique_name,
        key_columns=["id"],
        topic=f"{unique_name}.changes",
    )
    data = base_config(embedded_stack, table, with_password=True) | {"state_dir": str(tmp_path / "state")}
    config = write_toml(tmp_path / "lakesync.toml", data)
    settings = load_settings(config)
    StreamJob(settings, settings.tables, once=True).run(spark)
    run_until_caught_up(settings, table.topic_name, timeout_s=120)

    runner = CliRunner()
    in_sync = runner.invoke(app, ["--config", str(config), *args])
    assert in_sync.exit_code == 0, in_sync.output
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        conn.execute(f'UPDATE public."{unique_name}" SET name = %s WHERE id = 3', ("drifted",))
    drift = runner.invoke(app, ["--config", str(config), *args])
    assert drift.exit_code == 4, drift.output
