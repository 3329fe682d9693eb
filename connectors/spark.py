"""The one place a SparkSession is built: Delta enabled, local jars, settings derived from the machine.

The seed's "runtime-adaptive configuration" lives here and nowhere else: shuffle partitions and
parallelism follow the core count, adaptive execution is on, the session time zone is UTC (the
canonical row hash encodes timestamps in UTC). Anything under `spark.conf` in the config wins.
Jars come from the directory setup filled with Maven (`spark.jars`); nothing is downloaded here.

Under `spark-submit` (the Spark image, a cluster) the driver JVM is already running with the
master, classpath and driver memory spark-submit gave it: lakesync leaves those to spark-submit
(`--master`, `--jars` or jars baked into the image) unless the config sets `spark.master`.

Object storage (`[s3]`): its settings become `spark.hadoop.fs.s3a.*`, and the S3A jars (the
hadoop-aws jar and the AWS SDK bundle, ~700 MB) join the class path of the driver and the
executors from the directory setup filled, never through `spark.jars`, which would copy them to
every executor of every application. Under spark-submit the class path is spark-submit's
(`--driver-class-path`, `spark.executor.extraClassPath`, or the jars baked into the image).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from connectors import spark_console
from lakesync.config import LakesyncSettings, S3Settings, SparkSettings
from lakesync.errors import SetupError

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

# Jars that must be in jars_dir for lakesync to work; setup (deploy/setup.sh) puts them there.
REQUIRED_JAR_PREFIXES = ("delta-spark_", "delta-storage-", "postgresql-")
DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"


def machine_cores() -> int:
    """Cores this process may use (respects CPU affinity / container limits where visible)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def spark_jars(jars_dir: Path) -> list[Path]:
    """The jars to hand Spark, or SetupError saying how to fetch them."""
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    names = [jar.name for jar in jars]
    missing = [p for p in REQUIRED_JAR_PREFIXES if not any(n.startswith(p) for n in names)]
    if missing:
        raise SetupError(
            f"spark.jars_dir={jars_dir} lacks {', '.join(p.rstrip('-_') for p in missing)} jars; "
            "run `bash deploy/setup.sh` (or `make setup`) to fetch them with Maven"
        )
    return jars


def under_spark_submit() -> bool:
    """True when spark-submit started this driver: its JVM already runs, with its master and jars.

    spark-submit hands the Python driver its gateway in PYSPARK_GATEWAY_PORT, the variable pyspark
    itself checks before launching a JVM of its own.
    """
    return "PYSPARK_GATEWAY_PORT" in os.environ


def derived_conf(
    settings: SparkSettings, cores: int | None = None, *, submitted: bool = False, s3: S3Settings | None = None
) -> dict[str, str]:
    """Every spark.* setting lakesync applies, before the user's `spark.conf` overrides.

    `submitted`: running under spark-submit, which owns the master, the jars and driver memory.
    `s3`: object storage to reach through S3A (its jars must be where setup put them).
    """
    cores = cores or machine_cores()
    # Two tasks per core keeps both cores busy through skew without the per-task overhead
    # of Spark's default 200 shuffle partitions, which dominates on small machines.
    parallelism = settings.default_parallelism or 2 * cores
    master = settings.master or f"local[{cores}]"
    conf = {
        "spark.master": master,
        "spark.app.name": settings.app_name,
        "spark.driver.memory": settings.driver_memory,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions or parallelism),
        "spark.default.parallelism": str(parallelism),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.adaptive.skewJoin.enabled": "true",
        "spark.sql.autoBroadcastJoinThreshold": str(50 * 1024 * 1024),
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": str(settings.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        # Delta rebuilds a table's snapshot from its log with this many tasks (default 50); the
        # streaming job touches several small tables per batch, where 50 tiny tasks cost seconds.
        "spark.databricks.delta.snapshotPartitions": str(max(1, cores)),
    }
    if submitted:
        # The JVM is up: its classpath (jars) and memory are fixed, spark-submit chose the Python
        # interpreter (PYSPARK_PYTHON), and its master stands unless the config names one.
        del conf["spark.driver.memory"]
        if settings.master is None:
            del conf["spark.master"]
    else:
        conf["spark.jars"] = ",".join(str(j) for j in spark_jars(settings.jars_dir))
        if master.startswith("local"):
            # Python workers must run this interpreter (the venv with lakesync), not `python3` on PATH.
            conf["spark.pyspark.python"] = sys.executable
        # Spark's console logging is lakesync's: its log4j2 file, read back by spark_console.
        conf[DRIVER_JAVA_OPTIONS] = spark_console.java_options(settings.log_level)
    user_options = settings.conf.get(DRIVER_JAVA_OPTIONS)
    if s3 is not None:
        conf.update(s3a_conf(s3, submitted=submitted))
    conf.update(settings.conf)
    if user_options and DRIVER_JAVA_OPTIONS in conf and "log4j2.configurationFile" not in user_options:
        # The user's JVM options add to lakesync's logging setup instead of dropping it.
        conf[DRIVER_JAVA_OPTIONS] = f"{spark_console.java_options(settings.log_level)} {user_options}"
    return conf


def s3a_conf(s3: S3Settings, *, submitted: bool) -> dict[str, str]:
    """The S3A settings, and the class path unless spark-submit set it."""
    conf = {f"spark.hadoop.{key}": value for key, value in s3.hadoop_conf().items()}
    if not submitted:
        classpath = str(s3a_jars_dir(s3.jars_dir) / "*")
        conf["spark.driver.extraClassPath"] = classpath
        conf["spark.executor.extraClassPath"] = classpath
    return conf


def object_storage(settings: LakesyncSettings) -> S3Settings | None:
    """The `[s3]` settings when the config reaches object storage (an `[s3]` key or an s3a:// location)."""
    tables = settings.tables
    locations = [
        settings.state_dir,
        *(t.source_path or "" for t in tables),
        *(lk.path for t in tables for lk in t.lookups),
    ]
    if settings.s3.model_fields_set or any(location.startswith("s3a://") for location in locations):
        return settings.s3
    return None


def s3a_jars_dir(jars_dir: Path) -> Path:
    """The directory holding hadoop-aws and the AWS SDK bundle, or SetupError saying how to fetch them."""
    names = [jar.name for jar in jars_dir.glob("*.jar")] if jars_dir.is_dir() else []
    if not any(n.startswith("hadoop-aws-") for n in names) or not any(n.startswith("bundle-") for n in names):
        raise SetupError(
            f"s3.jars_dir={jars_dir} lacks the hadoop-aws and AWS SDK bundle jars; "
            "run `bash deploy/setup.sh` (or `make setup`) to fetch them with Maven"
        )
    return jars_dir


def build_spark_session(settings: SparkSettings, s3: S3Settings | None = None) -> SparkSession:
    """Create (or return the already running) SparkSession with lakesync's configuration.

    `s3`: pass the config's `[s3]` when any source, lookup or state_dir is on object storage.
    """
    from pyspark.sql import SparkSession

    submitted = under_spark_submit()
    conf = derived_conf(settings, submitted=submitted, s3=s3)
    if "spark.pyspark.python" in conf:
        # In-process (local) sessions read the worker interpreter from the environment only.
        os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
    spark_console.quiet_pyspark_loggers()
    if not submitted:
        spark_console.launch_jvm(conf)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.log_level)
    return session


def column(name: str) -> Column:
    """A column by its exact name: dots and backticks in names are not parsed as paths."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")
