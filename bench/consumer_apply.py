"""Consumer apply throughput: TPC-H `orders` as upsert envelopes on a topic → `lakesync consume`.

    .venv/bin/python -m bench.consumer_apply [--scale 1] [--baseline-rows 100000]

Starts fresh embedded Kafka + PostgreSQL, then measures in one run, on the same rows:

(a) our consumer, end to end from the topic: `lakesync consume` in a subprocess, from its
    partition assignment to its last batch commit (log timestamps), and its peak RSS (VmHWM);
(b) the raw ceiling: one COPY of the same rows (CSV) straight into an equal table;
(c) a plain per-row `INSERT ... ON CONFLICT` executemany baseline on the first N rows.

All three target tables have the same columns and primary key and start empty. The figures,
with the machine's cores, the date and the ratios, replace the consumer-apply section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from confluent_kafka import Producer
from psycopg import sql

from bench.report import machine, peak_rss_kib, write_section
from bench.tpch import tpch_parquet
from changes.envelope import ChangeEvent, Op, columns_text, encode_event
from changes.type_mapping import TargetColumn
from connectors.kafka import CHANGE_TOPIC_CONFIG, ensure_topics, producer_config
from deploy.embedded_stack import EmbeddedStack
from lakesync.config import LakesyncSettings

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "bench" / "results"  # gitignored: the consumer's log of the last run
START, END = "<!-- consumer-apply:start -->", "<!-- consumer-apply:end -->"
TABLE = "orders"
KEY = "o_orderkey"
COMMIT_TS = "2026-01-01T00:00:00.000000Z"
# The consumer's own defaults unless LAKESYNC_BENCH_CONSUMER (JSON) overrides some, for tuning runs.
BENCH_CONSUMER: dict[str, Any] = json.loads(os.environ.get("LAKESYNC_BENCH_CONSUMER", "{}"))
_ARROW_TYPES = {pa.int64(): "bigint", pa.int32(): "integer", pa.string(): "text", pa.date32(): "date"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (1 = 1.5 M orders)")
    parser.add_argument("--baseline-rows", type=int, default=100_000, help="rows for the executemany baseline (c)")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    orders = _load(tpch_parquet(TABLE, args.scale))
    home = Path(tempfile.mkdtemp(prefix="lakesync-bench-"))
    home.chmod(0o755)
    stack = EmbeddedStack.at(home / "embedded")
    stack.up()
    try:
        settings = _settings(stack)
        figures = run(settings, orders, home, args.baseline_rows)
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    figures["scale"] = args.scale
    report = render(figures)
    print(report)
    if not args.no_write:
        write_section(START, END, report)


def run(settings: LakesyncSettings, orders: pa.Table, home: Path, baseline_rows: int) -> dict[str, Any]:
    columns = _columns(orders.schema)
    topic = settings.tables[0].topic_name
    ensure_topics(settings.kafka, [topic], config=CHANGE_TOPIC_CONFIG)
    started = time.monotonic()
    produced = produce(settings, topic, orders, columns)
    figures: dict[str, Any] = {"rows": orders.num_rows, "produce_s": time.monotonic() - started, "messages": produced}
    figures.update(measure_consumer(settings, home, produced))
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", TABLE))).fetchone()
        assert count is not None and count[0] == orders.num_rows, (
            f"consumer wrote {count} rows, expected {orders.num_rows}"
        )
        figures["copy_s"] = measure_copy(conn, orders)
        subset = orders.slice(0, min(baseline_rows, orders.num_rows))
        figures["baseline_rows"] = subset.num_rows
        figures["baseline_s"] = measure_executemany(conn, subset, columns)
    return figures


# --- the topic ---------------------------------------------------------------------------------


def produce(settings: LakesyncSettings, topic: str, orders: pa.Table, columns: list[TargetColumn]) -> int:
    """One upsert envelope per row (version 1), keyed by o_orderkey; returns the count."""
    _check_encoding(orders.slice(0, 1000), columns)
    producer = Producer(producer_config(settings.kafka))
    headers = [("lakesync-envelope", b"1"), ("lakesync-table", TABLE.encode())]
    count = 0
    for key, value in _envelopes(orders, columns):
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0, "messages left unacknowledged"
    return count


def _envelopes(orders: pa.Table, columns: list[TargetColumn]) -> Any:
    """(key, value) per row: the bytes encode_event makes, built from Arrow-cast strings (fast)."""
    as_json = _json_ready(orders)
    columns_json = columns_text(columns)
    for batch in as_json.to_batches(max_chunksize=50_000):
        for after in batch.to_pylist():
            body = {
                "v": 1,
                "op": "upsert",
                "table": TABLE,
                "source": f"tpch/{TABLE}",
                "version": 1,
                "commit_ts": COMMIT_TS,
                "batch_id": 0,
                "hash": None,
                "key": {KEY: after[KEY]},
                "after": after,
                "columns": columns_json,
            }
            yield orjson.dumps({KEY: after[KEY]}), orjson.dumps(body)


def _check_encoding(sample: pa.Table, columns: list[TargetColumn]) -> None:
    """The fast encoder must produce what changes.envelope.encode_event produces."""
    commit_ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for (key, value), after in zip(_envelopes(sample, columns), sample.to_pylist(), strict=True):
        event = ChangeEvent(
            op=Op.UPSERT,
            table=TABLE,
            key=(after[KEY],),
            key_names=(KEY,),
            version=1,
            after=after,
            columns=tuple(columns),
            commit_ts=commit_ts,
            batch_id=0,
            source=f"tpch/{TABLE}",
        )
        ref_key, ref_value, _ = encode_event(event)
        assert (orjson.loads(key), orjson.loads(value)) == (orjson.loads(ref_key), orjson.loads(ref_value))


# --- (a) the consumer --------------------------------------------------------------------------


def measure_consumer(settings: LakesyncSettings, home: Path, messages: int) -> dict[str, Any]:
    config = _write_config(home / "consume.toml", settings)
    log = home / "consume.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESYNC_")}
    _checkpoint(settings)
    launched = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lakesync", "--log-format", "json", "--config", str(config), "consume"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        while _stored(settings) < messages:
            if process.poll() is not None:
                raise SystemExit(f"consumer exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() - launched > 900:
                raise SystemExit("consumer did not finish within 15 min")
            time.sleep(0.25)
        wall = time.monotonic() - launched
        peak_kib = peak_rss_kib(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    RESULTS.mkdir(exist_ok=True)
    shutil.copy(log, RESULTS / "consumer_apply.consume.log")
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assigned = min(_instant(e) for e in events if e["event"] == "partitions assigned")
    batches = [e for e in events if e["event"] == "batch applied"]
    last = max(_instant(e) for e in batches)
    return {
        "consumer_s": last - assigned,
        "consumer_wall_s": wall,
        "consumer_rss_mib": peak_kib / 1024,
        "batches": len(batches),
        "batch_max_messages": settings.consumer.batch_max_messages,
    }


def _stored(settings: LakesyncSettings) -> int:
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        found = conn.execute("SELECT to_regclass('lakesync.consumer_offsets')").fetchone()
        if not found or found[0] is None:
            return 0
        total = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM lakesync.consumer_offsets").fetchone()
    return int(total[0]) if total else 0


def _instant(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


# --- (b) raw COPY, (c) executemany -------------------------------------------------------------


def measure_copy(conn: psycopg.Connection, orders: pa.Table) -> float:
    """Seconds for one COPY (CSV) of every row into an empty table like the consumer's target."""
    raw = _equal_table(conn, "orders_copy")
    data = _json_ready(orders)
    data = data.append_column("_lakesync_version", pa.array([1] * data.num_rows, pa.int64()))
    data = data.append_column("_lakesync_commit_ts", pa.array([COMMIT_TS] * data.num_rows, pa.string()))
    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
    payload = buffer.getvalue()
    _checkpoint_on(conn)
    started = time.monotonic()
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(raw)) as copy:
        for at in range(0, len(payload), 1 << 20):
            copy.write(payload[at : at + (1 << 20)])
    conn.commit()
    return time.monotonic() - started


def measure_executemany(conn: psycopg.Connection, orders: pa.Table, columns: list[TargetColumn]) -> float:
    """Seconds for a per-row, version-guarded INSERT ... ON CONFLICT executemany of `orders`."""
    target = _equal_table(conn, "orders_executemany")
    names = [c.name for c in columns] + ["_lakesync_version", "_lakesync_commit_ts"]
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names if n != KEY]
    statement = sql.SQL(
        "INSERT INTO {} AS t ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}"
        " WHERE t._lakesync_version < EXCLUDED._lakesync_version"
    ).format(
        target,
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
        sql.Identifier(KEY),
        sql.SQL(", ").join(updates),
    )
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    params = [(*row.values(), 1, ts) for row in orders.to_pylist()]
    _checkpoint_on(conn)
    started = time.monotonic()
    with conn.cursor() as cursor:
        cursor.executemany(statement, params)
    conn.commit()
    return time.monotonic() - started


def _equal_table(conn: psycopg.Connection, name: str) -> sql.Identifier:
    table = sql.Identifier("public", name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(table, sql.Identifier("public", TABLE)))
    conn.commit()
    return table


def _checkpoint(settings: LakesyncSettings) -> None:
    with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _checkpoint_on(conn: psycopg.Connection) -> None:
    conn.commit()
    conn.autocommit = True
    conn.execute("CHECKPOINT")
    conn.autocommit = False


# --- data and settings -------------------------------------------------------------------------


def _load(path: Path) -> pa.Table:
    table = pq.read_table(path)
    # tpchgen writes string_view; the JSON and CSV writers want plain strings.
    schema = pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in table.schema])
    return table.cast(schema)


def _columns(schema: pa.Schema) -> list[TargetColumn]:
    def pg(t: pa.DataType) -> str:
        if pa.types.is_decimal(t):
            return f"numeric({t.precision},{t.scale})"
        return _ARROW_TYPES[t]

    return [TargetColumn(f.name, pg(f.type)) for f in schema]


def _json_ready(orders: pa.Table) -> pa.Table:
    """Decimals and dates as the strings the envelope carries (Arrow casts keep the scale)."""
    arrays = [
        pc.cast(column, pa.string()) if pa.types.is_decimal(column.type) or pa.types.is_date(column.type) else column
        for column in orders.columns
    ]
    return pa.table(arrays, names=orders.column_names)


def _settings(stack: EmbeddedStack) -> LakesyncSettings:
    overrides: dict[str, Any] = stack.settings_overrides()
    return LakesyncSettings(
        **overrides,
        tables=[{"name": TABLE, "source_path": f"tpch/{TABLE}", "target_table": TABLE, "key_columns": [KEY]}],
        consumer={"group_id": "bench", **BENCH_CONSUMER},
    )


def _write_config(path: Path, settings: LakesyncSettings) -> Path:
    data = settings.model_dump(mode="json", include={"kafka", "postgres", "consumer", "tables"})
    data["postgres"]["password"] = settings.postgres.password.get_secret_value() if settings.postgres.password else None
    lines: list[str] = []
    for section in ("kafka", "postgres", "consumer"):
        lines.append(f"[{section}]")
        lines += [
            f"{k} = {json.dumps(v)}" for k, v in data[section].items() if v is not None and not isinstance(v, dict)
        ]
    for table in data["tables"]:
        lines.append("[[tables]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


# --- the report --------------------------------------------------------------------------------


def render(f: dict[str, Any]) -> str:
    rows = f["rows"]
    consumer_rate = rows / f["consumer_s"]
    copy_rate = rows / f["copy_s"]
    baseline_rate = f["baseline_rows"] / f["baseline_s"]
    ratio = consumer_rate / copy_rate
    verdict_rate = "met" if consumer_rate >= 100_000 else "MISSED"
    verdict_ratio = "met" if ratio >= 0.5 else "MISSED"
    verdict_rss = "met" if f["consumer_rss_mib"] < 300 else "MISSED"
    return "\n".join(
        [
            START,
            "## Consumer apply (`python -m bench.consumer_apply`)",
            "",
            f"{machine()}, fresh embedded Kafka + PostgreSQL.",
            (
                f"TPC-H `orders` SF{f['scale']:g}: {rows:,} rows as {f['messages']:,} upsert envelopes "
                f"(produced in {f['produce_s']:.1f} s, not counted), applied into tables with the same columns "
                "and primary key, each empty at the start."
            ),
            "",
            "| measurement | rows | seconds | rows/s | vs raw COPY |",
            "|---|---:|---:|---:|---:|",
            (
                f"| (a) `lakesync consume`, topic → PostgreSQL, assignment to last commit | {rows:,} | {f['consumer_s']:.2f} | "
                f"{consumer_rate:,.0f} | {ratio:.2f}× |"
            ),
            f"| (b) raw ceiling: one `COPY` (CSV) straight into the table | {rows:,} | {f['copy_s']:.2f} | {copy_rate:,.0f} | 1.00× |",
            (
                f"| (c) per-row `INSERT ... ON CONFLICT` executemany (first {f['baseline_rows']:,} rows) | {f['baseline_rows']:,} | "
                f"{f['baseline_s']:.2f} | {baseline_rate:,.0f} | {baseline_rate / copy_rate:.2f}× |"
            ),
            "",
            (
                f"- Consumer: {f['batches']} batches (batch_max_messages {f['batch_max_messages']:,}), "
                f"{f['consumer_wall_s']:.1f} s from process launch to the last offset stored (start-up and group join included), "
                f"peak RSS {f['consumer_rss_mib']:.0f} MiB."
            ),
            f"- Consumer vs executemany baseline: {consumer_rate / baseline_rate:.1f}×.",
            (
                f"- Targets: (a) ≥ 100,000 rows/s — {verdict_rate} ({consumer_rate:,.0f}); (a) ≥ 0.5 × (b) — {verdict_ratio} "
                f"({ratio:.2f}×); RSS < 300 MB — {verdict_rss} ({f['consumer_rss_mib']:.0f} MiB)."
            ),
            END,
        ]
    )


if __name__ == "__main__":
    main(sys.argv[1:])
