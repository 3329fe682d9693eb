"""Reading one Delta commit's actions straight from the table's log, without a Spark job.

The stream needs to know whether a micro-batch that ended inside commit V read V's last file
(progress.py). Delta's change-data-feed source numbers a commit's files like this: the commit's
`cdc` files if it has any, otherwise its `add` and `remove` actions with `dataChange` true, in log
order. The commit file is `_delta_log/<V as 20 digits>.json`, one action per line (the Delta
protocol), read here through Hadoop's FileSystem so any store Spark reads (file, s3a) works.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def change_feed_files(actions: Iterable[dict[str, Any]]) -> int:
    """How many files Delta's change-data-feed source indexes in a commit with these actions."""
    actions = list(actions)
    cdc = sum(1 for a in actions if "cdc" in a)
    if cdc:
        return cdc
    return sum(1 for a in actions for kind in ("add", "remove") if kind in a and a[kind].get("dataChange", True))


def commit_actions(spark: Any, table_location: str, version: int) -> list[dict[str, Any]] | None:
    """The actions of commit `version` of the Delta table at `table_location` (None if the file is gone)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{table_location.rstrip('/')}/_delta_log/{version:020d}.json")
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")  # one py4j round trip
    finally:
        stream.close()
    return [json.loads(line) for line in text.splitlines() if line.strip()]
