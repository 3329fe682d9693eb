"""The Spark session's settings are derived from the machine, in one place, overridable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.spark import derived_conf, spark_jars
from lakesync.config import S3Settings, SparkSettings
from lakesync.errors import SetupError


@pytest.fixture
def jars_dir(tmp_path: Path) -> Path:
    for name in ("delta-spark_4.2_2.13-4.4.0.jar", "delta-storage-4.4.0.jar", "postgresql-42.7.14.jar"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_parallelism_follows_core_count(jars_dir: Path) -> None:
    conf = derived_conf(SparkSettings(jars_dir=jars_dir), cores=4)
    assert conf["spark.master"] == "local[4]"
    assert conf["spark.sql.shuffle.partitions"] == "8"
    assert conf["spark.default.parallelism"] == "8"
    assert conf["spark.sql.adaptive.enabled"] == "true"
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_jars_are_local_files_never_packages(jars_dir: Path) -> None:
    conf = derived_conf(SparkSettings(jars_dir=jars_dir), cores=2)
    assert conf["spark.jars"].count(".jar") == 3
    assert all(Path(j).parent == jars_dir for j in conf["spark.jars"].split(","))
    assert "spark.jars.packages" not in conf


def test_explicit_settings_and_raw_conf_win(jars_dir: Path) -> None:
    settings = SparkSettings(
        jars_dir=jars_dir,
        master="spark://cluster:7077",
        shuffle_partitions=64,
        conf={"spark.sql.adaptive.enabled": "false"},
    )
    conf = derived_conf(settings, cores=2)
    assert conf["spark.master"] == "spark://cluster:7077"
    assert conf["spark.sql.shuffle.partitions"] == "64"
    assert conf["spark.sql.adaptive.enabled"] == "false"


def test_missing_jars_say_how_to_fetch_them(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"delta-spark.*deploy/setup.sh"):
        spark_jars(tmp_path)


def test_under_spark_submit_the_master_jars_and_driver_memory_are_left_to_it(tmp_path: Path) -> None:
    """spark-submit started the JVM: lakesync must not override its --master or need local jars."""
    conf = derived_conf(SparkSettings(jars_dir=tmp_path / "absent"), cores=2, submitted=True)
    for owned in ("spark.master", "spark.jars", "spark.driver.memory", "spark.pyspark.python"):
        assert owned not in conf
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_under_spark_submit_a_configured_master_and_raw_conf_still_win(jars_dir: Path) -> None:
    settings = SparkSettings(jars_dir=jars_dir, master="spark://cluster:7077", conf={"spark.driver.memory": "8g"})
    conf = derived_conf(settings, cores=2, submitted=True)
    assert conf["spark.master"] == "spark://cluster:7077"
    assert conf["spark.driver.memory"] == "8g"
    assert "spark.jars" not in conf


def test_spark_submit_is_recognised_by_the_gateway_it_hands_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """spark-submit's PythonRunner exports PYSPARK_GATEWAY_PORT; a plain `lakesync` process has none."""
    from connectors.spark import under_spark_submit

    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert not under_spark_submit()
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "41234")
    assert under_spark_submit()


@pytest.fixture
def s3a_jars(tmp_path: Path) -> Path:
    jars = tmp_path / "s3a"
    jars.mkdir()
    for name in ("hadoop-aws-3.5.0.jar", "bundle-2.35.4.jar"):
        (jars / name).write_bytes(b"")
    return jars


def test_object_storage_reaches_spark_as_hadoop_settings_and_a_class_path(jars_dir: Path, s3a_jars: Path) -> None:
    """The S3A jars join the class path in place: never spark.jars, which copies ~700 MB to each executor."""
    s3 = S3Settings(
        endpoint="http://127.0.0.1:8333", access_key_id="AK", secret_access_key=SecretStr("SK"), jars_dir=s3a_jars
    )
    conf = derived_conf(SparkSettings(jars_dir=jars_dir), cores=2, s3=s3)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:8333"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "SK"
    assert conf["spark.driver.extraClassPath"] == conf["spark.executor.extraClassPath"] == f"{s3a_jars}/*"
    assert "bundle" not in conf["spark.jars"]


def test_under_spark_submit_object_storage_leaves_the_class_path_to_it(tmp_path: Path) -> None:
    s3 = S3Settings(endpoint="http://s3:8333", jars_dir=tmp_path / "absent")
    conf = derived_conf(SparkSettings(jars_dir=tmp_path / "absent"), cores=2, submitted=True, s3=s3)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://s3:8333"
    assert "spark.driver.extraClassPath" not in conf and "spark.executor.extraClassPath" not in conf


def test_missing_s3a_jars_say_how_to_fetch_them(jars_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"hadoop-aws.*deploy/setup.sh"):
        derived_conf(SparkSettings(jars_dir=jars_dir), cores=2, s3=S3Settings(jars_dir=tmp_path / "none"))


def test_object_storage_is_used_only_when_the_config_reaches_it() -> None:
    from connectors.spark import object_storage
    from lakesync.config import load_settings

    table = {"name": "people", "target_table": "people", "key_columns": ["id"]}
    local = load_settings(None, tables=[{**table, "source_path": "/lake/people"}])
    assert object_storage(local) is None
    on_s3 = load_settings(None, tables=[{**table, "source_path": "s3a://lake/people"}])
    assert object_storage(on_s3) is on_s3.s3
    assert object_storage(load_settings(None, s3={"endpoint": "http://s3:8333"})) is not None
    assert object_storage(load_settings(None, state_dir="s3a://bucket/state")) is not None
