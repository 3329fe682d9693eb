"""Spark's console output, lakesync's to decide: the driver JVM's stdout and stderr become log lines.

A local SparkSession's JVM (launched by pyspark through spark-submit) inherits the Python
process's terminal and writes to it whatever log4j, the JVM itself ("WARNING: Using incubator
modules") and the Python workers it spawns have to say. Here the JVM is launched with its output
on a pipe instead, which a thread reads: log4j's JSON events (spark_log4j2.properties) are logged
at their level with the Java logger's name, anything else at DEBUG. What an operator sees is
lakesync's log, in lakesync's format, and only what passes spark.log_level.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from lakesync.errors import SetupError
from lakesync.logs import get_logger

LOG4J2_CONFIG = Path(__file__).resolve().parent / "spark_log4j2.properties"

log = get_logger("spark")

# pyspark's own loggers that print a failed query's context as JSON straight to stderr (each has
# its own handler and does not propagate); lakesync reports the error itself, in one line.
_PYSPARK_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")

_LEVELS = {"FATAL": "error", "ERROR": "error", "WARN": "warning", "INFO": "info", "DEBUG": "debug", "TRACE": "debug"}


def java_options(level: str) -> str:
    """Driver JVM options that put Spark's logging under spark_log4j2.properties at `level`."""
    return f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()} -Dlakesync.spark.logLevel={level.lower()}"


def launch_jvm(conf: Mapping[str, str]) -> None:
    """Start the driver JVM (the py4j gateway) with its output piped into lakesync's log.

    Does nothing when pyspark already has a gateway (a session ran before in this process).
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.errors import PySparkRuntimeError
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    spark_conf = SparkConf(loadDefaults=False)
    for key, value in conf.items():
        spark_conf.set(key, value)
    read_end, write_end = os.pipe()
    recent = _forward_in_background(os.fdopen(read_end, "rb"))
    try:
        # popen_kwargs is pyspark's documented hook for capturing the JVM's stdout and stderr.
        gateway = launch_gateway(spark_conf, popen_kwargs={"stdout": write_end, "stderr": write_end})
    except PySparkRuntimeError as exc:
        said = recent[-1] if recent else "no output"
        raise SetupError(
            f"Spark's JVM did not start (it said: {said}); check Java 17+ and `bash deploy/setup.sh`"
        ) from exc
    finally:
        os.close(write_end)  # the JVM holds its own copy; EOF comes when it exits
    SparkContext._ensure_initialized(gateway=gateway)


def quiet_pyspark_loggers() -> None:
    """Keep pyspark's query-context loggers off stderr (the error reaches the log at DEBUG anyway)."""
    import logging

    from pyspark.logger import PySparkLogger

    for name in _PYSPARK_CONTEXT_LOGGERS:
        # Created here as pyspark would (it calls PySparkLogger-only methods on them), minus the handler.
        logger = PySparkLogger.getLogger(name)
        logger.handlers[:] = [logging.NullHandler()]


def _forward_in_background(stream: IO[bytes]) -> deque[str]:
    """Log every line of `stream` from a daemon thread; return the last few plain lines seen."""
    recent: deque[str] = deque(maxlen=5)
    thread = threading.Thread(target=_forward, args=(stream, recent), name="lakesync-spark-console", daemon=True)
    thread.start()
    return recent


def _forward(stream: IO[bytes], recent: deque[str]) -> None:
    with stream:
        for line in _lines(stream):
            event = _parse(line)
            if event is None:
                recent.append(line)
                log.debug("spark output", line=line)
            else:
                _log_event(event)


def _lines(stream: IO[bytes]) -> Iterator[str]:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            yield line


def _parse(line: str) -> dict[str, Any] | None:
    """A log4j event from spark_log4j2.properties' layout, or None for any other output."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "level" in event and "message" in event else None


def _log_event(event: dict[str, Any]) -> None:
    method = getattr(log, _LEVELS.get(str(event["level"]), "info"))
    fields: dict[str, Any] = {"spark_logger": event.get("logger")}
    if event.get("exception"):
        fields["error"] = f"{event['exception']}: {event.get('exception_message') or ''}".strip(": ")
    method(event["message"], **fields)
    if event.get("stack"):
        log.debug("spark stack trace", spark_logger=event.get("logger"), stack=event["stack"])
