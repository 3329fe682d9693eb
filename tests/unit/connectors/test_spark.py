"""The Spark session's settings are derived from the machine, in one place, overridable."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.spark import derived_conf, spark_jars
from lakesync.config import SparkSettings
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
