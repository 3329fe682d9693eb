"""Delta sources read from their transaction log with `deltalake` (Rust): no Spark, no JVM, milliseconds.

A table given by catalog name (`source_table`) or on storage `deltalake` cannot open with what
lakesync knows (object stores configured through spark.conf) is skipped: the stream checks it
when Spark starts. Only an answer that the table is not there is a failure.
"""

from __future__ import annotations

import json
from pathlib import Path

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError
from pyspark.sql import types as T

from lakesync.config import TableMapping
from lakesync.errors import NotReadyError
from lakesync.preflight.findings import Finding, fail, ok, skip
from lakesync.preflight.mapping import check_mapping, delta_name

CDF_PROPERTY = "delta.enableChangeDataFeed"


def check_source(table: TableMapping) -> list[Finding]:
    """The Delta table exists, has its change data feed on, and fits the mapping."""
    subject = f"table {table.name}"
    if table.source_path is None:
        return [skip(subject, f"catalog table {table.source} (checked when the stream starts)")]
    try:
        delta = DeltaTable(table.source_path)
        configuration = delta.metadata().configuration
        schema = T.StructType.fromJson(json.loads(delta.schema().to_json()))
    except TableNotFoundError:
        return [
            fail(
                subject,
                f"no Delta table at {table.source_path}",
                "fix tables.source_path, or create the table (with delta.enableChangeDataFeed = true)",
                NotReadyError,
            )
        ]
    except (DeltaError, OSError, ValueError) as exc:  # a protocol deltalake lacks, object-store credentials
        return [
            skip(
                subject,
                f"{table.source_path} unreadable without Spark ({type(exc).__name__}; checked when the stream starts)",
            )
        ]
    if str(configuration.get(CDF_PROPERTY, "false")).lower() != "true":
        return [_change_feed_off(subject, table)]
    found = [ok(subject, f"Delta table at {table.source_path}, version {delta.version()}, change data feed on")]
    return (
        found + check_mapping(table, schema) + [_lookup(subject, lookup.name, lookup.path) for lookup in table.lookups]
    )


def _change_feed_off(subject: str, table: TableMapping) -> Finding:
    return fail(
        subject,
        f"change data feed is off on {table.source}",
        f"run ALTER TABLE {delta_name(table)} SET TBLPROPERTIES (delta.enableChangeDataFeed = true), "
        "then stream from a version after that commit (starting_version) or from a full snapshot (no starting_version)",
        NotReadyError,
    )


def _lookup(subject: str, name: str, path: str) -> Finding:
    if "://" in path or Path(path).exists():
        return ok(subject, f"lookup {name!r} at {path}")
    return fail(
        subject,
        f"lookup {name!r}: nothing at {path}",
        f"fix the path of lookup {name!r} in [[tables.lookups]]",
        NotReadyError,
    )
