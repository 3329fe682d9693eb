"""Locations on any store Spark reaches: a local directory or a Hadoop URI (`s3a://bucket/dir`).

The streaming checkpoint is written by Spark wherever `state_dir` points; lakesync itself only
needs to know whether a checkpoint exists and to delete one (after a rebuild). Both go through
Hadoop's FileSystem of the running Spark session, the same code Spark uses, so a path works the
same on a local disk, HDFS or S3. Local paths are made absolute: the driver and the executors
must not resolve them against different working directories.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# `scheme://...` as RFC 3986 spells a scheme; a Windows drive letter never reaches here.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: str) -> bool:
    """True for `s3a://...`, `hdfs://...`, `file:///...`; False for a plain path."""
    return bool(_URI.match(location))


def absolute(location: str) -> str:
    """A URI as it is; a plain path made absolute (against this process's directory)."""
    return location if is_uri(location) else str(Path(location).absolute())


def join(location: str, *parts: str) -> str:
    """`location/part/...` without doubling or dropping slashes (`s3a://b/` + `x` = `s3a://b/x`)."""
    return "/".join([location.rstrip("/"), *(part.strip("/") for part in parts)])


def exists(spark: SparkSession, location: str) -> bool:
    path, fs = _hadoop_path(spark, location)
    return bool(fs.exists(path))


def delete(spark: SparkSession, location: str) -> None:
    """Delete a directory tree (nothing happens when it is absent)."""
    path, fs = _hadoop_path(spark, location)
    fs.delete(path, True)


def read_text(spark: SparkSession, location: str) -> str | None:
    """A small file's text, or None when it does not exist."""
    path, fs = _hadoop_path(spark, location)
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        jvm: Any = spark.sparkContext._jvm
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def _hadoop_path(spark: SparkSession, location: str) -> tuple[Any, Any]:
    jvm: Any = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(absolute(location))
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
