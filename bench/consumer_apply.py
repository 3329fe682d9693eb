"""Consumer apply throughput: TPC-H `orders` through `lakesync consume`, beside raw COPY and the Debezium JDBC sink.

    .venv/bin/python -m bench.consumer_apply [--scale 1] [--no-debezium] [--no-write]

Starts fresh embedded Kafka + PostgreSQL, then measures in one run, on the same rows:

(a) `lakesync consume` in a subprocess, from a 3-partition topic of upsert envelopes: inserts into
    an empty table, then updates of every row (the same rows again, version 2, o_shippriority 1),
    each from the member's claim to its last batch commit (log timestamps);
(b) the raw ceiling: one COPY (CSV) of the same rows straight into an empty, equal table;
(d) the Debezium JDBC sink 3.6.0.Final in Kafka Connect 4.3.1 standalone (jars from setup,
    deploy/maven/), upsert mode, from a topic of the same rows as JSON with schemas: inserts, then
    updates, each from its task's start to the last row written.

For each path: rows/s, the process's CPU seconds and µs per row (from /proc, utime + stime),
PostgreSQL's CPU seconds (server and backends), peak RSS (VmHWM). The machine is shared: compare
ratios within one run. Every final table is checked against the source. The figures replace the
consumer-apply section of BENCHMARKS.md and go to bench/results/consumer_apply.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from confluent_kafka import Producer
from psycopg import sql

from bench.report import children, fresh_stack, machine, peak_rss_kib, write_section
from bench.tpch import tpch_parquet
from changes.envelope import ChangeEvent, Op, columns_text, encode_event
from changes.type_mapping import TargetColumn
from connectors.kafka import CHANGE_TOPIC_CONFIG, ensure_topics, producer_config
from connectors.kafka_messages import ProducedHeaders
from deploy.embedded_kafka import java_executable
from deploy.embedded_stack import EmbeddedStack
from deploy.processes import free_port
from lakesync.config import ConsumerSettings, LakesyncSettings, TableMapping, default_cache_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- consumer-apply:start -->", "<!-- consumer-apply:end -->"
TABLE = "orders"
KEY = "o_orderkey"
COMMIT_TS = "2026-01-01T00:00:00.000000Z"
PARTITIONS = 3
# The consumer's own defaults unless LAKESYNC_BENCH_CONSUMER (JSON) overrides some, for tuning runs.
BENCH_CONSUMER: dict[str, Any] = json.loads(os.environ.get("LAKESYNC_BENCH_CONSUMER", "{}"))
_ARROW_TYPES = {pa.int64(): "bigint", pa.int32(): "integer", pa.string(): "text", pa.date32(): "date"}
_CLK = os.sysconf("SC_CLK_TCK")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (1 = 1.5 M orders)")
    parser.add_argument("--no-debezium", action="store_true", help="leave out reference (d)")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    orders = _load(tpch_parquet(TABLE, args.scale))
    with fresh_stack("lakesync-bench-") as (stack, home):
        figures = run(_settings(stack), stack, orders, home, debezium=not args.no_debezium)
    figures.update(scale=args.scale, machine=machine(), date=dt.date.today().isoformat())
    report = render(figures)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "consumer_apply.json").write_text(json.dumps(figures, indent=2) + "\n")
    if not args.no_write:
        write_section(START, END, report)


def run(
    settings: LakesyncSettings, stack: EmbeddedStack, orders: pa.Table, home: Path, *, debezium: bool
) -> dict[str, Any]:
    columns = _columns(orders.schema)
    topic = settings.tables[0].topic_name
    ensure_topics(settings.kafka, [topic], config=CHANGE_TOPIC_CONFIG)
    postgres = PostgresCpu(stack.postgres.pid)
    figures: dict[str, Any] = {"rows": orders.num_rows, "partitions": PARTITIONS}
    produce(settings, topic, _envelopes(orders, columns, version=1))
    figures["lakesync_insert"] = measure_consumer(settings, home, orders.num_rows, postgres, "insert").as_dict()
    _check_table(settings, sql.Identifier("public", TABLE), orders.num_rows, shippriority=0)
    produce(settings, topic, _envelopes(_updated(orders), columns, version=2))
    figures["lakesync_update"] = measure_consumer(settings, home, 2 * orders.num_rows, postgres, "update").as_dict()
    _check_table(settings, sql.Identifier("public", TABLE), orders.num_rows, shippriority=1)
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        figures["copy"] = measure_copy(conn, orders, postgres).as_dict()
    if debezium:
        figures.update(measure_debezium(settings, orders, home, postgres))
    return figures


# --- measurements ------------------------------------------------------------------------------


@dataclass
class Run:
    """One path's figures: rows in seconds, the process's and PostgreSQL's CPU, peak memory."""

    rows: int
    seconds: float
    cpu_s: float | None = None
    postgres_cpu_s: float | None = None
    rss_mib: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        rate = self.rows / self.seconds
        cpu_us = None if self.cpu_s is None else self.cpu_s / self.rows * 1e6
        return {
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(rate),
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 2),
            "cpu_us_per_row": None if cpu_us is None else round(cpu_us, 2),
            "postgres_cpu_s": None if self.postgres_cpu_s is None else round(self.postgres_cpu_s, 2),
            "rss_mib": None if self.rss_mib is None else round(self.rss_mib),
            **self.notes,
        }


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process so far, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK


class PostgresCpu:
    """CPU seconds of the PostgreSQL server: the postmaster, its live children and the reaped ones."""

    def __init__(self, postmaster: int | None) -> None:
        self._pid = postmaster

    def now(self) -> float:
        if self._pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self._pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        own = sum(int(fields[i]) for i in (11, 12, 13, 14)) / _CLK  # utime stime cutime cstime
        return own + sum(process_cpu_s(child) for child in children(self._pid))


class CpuSamples(threading.Thread):
    """Samples (wall time, CPU of a process, CPU of PostgreSQL) every 50 ms; read CPU at any instant."""

    def __init__(self, pid: int, postgres: PostgresCpu) -> None:
        super().__init__(daemon=True)
        self.pid, self.postgres = pid, postgres
        self.samples: list[tuple[float, float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.time(), process_cpu_s(self.pid), self.postgres.now()))
            time.sleep(0.05)

    def at(self, instant: float) -> tuple[float, float]:
        """(process CPU, PostgreSQL CPU) at `instant`, interpolated between samples."""
        before = max((s for s in self.samples if s[0] <= instant), default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= instant), default=self.samples[-1])
        if after[0] == before[0]:
            return before[1], before[2]
        share = (instant - before[0]) / (after[0] - before[0])
        return tuple(b + (a - b) * share for a, b in zip(after[1:], before[1:], strict=True))  # type: ignore[return-value]  # as many figures as the sample has, a fixed-size tuple


def measure_consumer(settings: LakesyncSettings, home: Path, offsets: int, postgres: PostgresCpu, label: str) -> Run:
    """`lakesync consume` until the stored offsets reach `offsets`: its claim to its last commit."""
    config = _write_config(home / "consume.toml", settings)
    log = home / f"consume-{label}.log"
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
    cpu = CpuSamples(process.pid, postgres)
    cpu.start()
    try:
        _wait(lambda: _stored(settings) >= offsets, process, launched, log)
        time.sleep(0.2)  # a last sample after the last commit
        peak_kib = peak_rss_kib(process.pid)
    finally:
        cpu.stopped.set()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    RESULTS.mkdir(exist_ok=True)
    shutil.copy(log, RESULTS / f"consumer_apply.consume-{label}.log")
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    claimed = min(_instant(e) for e in events if e["event"] == "partitions claimed")
    batches = [e for e in events if e["event"] == "batch applied"]
    last = max(_instant(e) for e in batches)
    (cpu0, pg0), (cpu1, pg1) = cpu.at(claimed), cpu.at(last)
    rows = offsets if label == "insert" else offsets // 2
    notes = {"batches": len(batches), "fenced": sum(e["event"] == "batch fenced, dropped" for e in events)}
    return Run(rows, last - claimed, cpu1 - cpu0, pg1 - pg0, peak_kib / 1024, notes)


def measure_copy(conn: psycopg.Connection, orders: pa.Table, postgres: PostgresCpu) -> Run:
    """One COPY (CSV) of every row into an empty table like the consumer's target."""
    raw = _equal_table(conn, "orders_copy")
    data = _json_ready(orders)
    data = data.append_column("_lakesync_version", pa.array([1] * data.num_rows, pa.int64()))
    data = data.append_column("_lakesync_commit_ts", pa.array([COMMIT_TS] * data.num_rows, pa.string()))
    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
    payload = buffer.getvalue()
    _checkpoint_on(conn)
    pg0, started = postgres.now(), time.monotonic()
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(raw)) as copy:
        for at in range(0, len(payload), 1 << 20):
            copy.write(payload[at : at + (1 << 20)])
    conn.commit()
    return Run(orders.num_rows, time.monotonic() - started, postgres_cpu_s=postgres.now() - pg0)


# --- (d) the Debezium JDBC sink ----------------------------------------------------------------


def measure_debezium(settings: LakesyncSettings, orders: pa.Table, home: Path, postgres: PostgresCpu) -> dict[str, Any]:
    """Inserts, then updates, of the same rows through Kafka Connect standalone + the JDBC sink."""
    connect = Connect(settings, home / "connect")
    topic = "bench.orders.debezium"
    ensure_topics(settings.kafka, [topic])
    target = sql.Identifier("public", "orders_debezium")
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(target, sql.Identifier("public", TABLE)))
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN _lakesync_version, DROP COLUMN _lakesync_commit_ts").format(target)
        )
    produce(settings, topic, _connect_records(orders))
    rows = orders.num_rows
    inserts = connect.measure(topic, rows, lambda: _count(settings, target, 0) >= rows, postgres, "insert")
    _check_table(settings, target, orders.num_rows, shippriority=0)
    produce(settings, topic, _connect_records(_updated(orders)))
    updates = connect.measure(topic, rows, lambda: _count(settings, target, 1) >= rows, postgres, "update")
    _check_table(settings, target, orders.num_rows, shippriority=1)
    return {"debezium_insert": inserts.as_dict(), "debezium_update": updates.as_dict()}


class Connect:
    """Kafka Connect standalone with the Debezium JDBC sink, from the jars setup fetched."""

    def __init__(self, settings: LakesyncSettings, home: Path) -> None:
        jars = default_cache_dir() / "jars"
        self.classpath = jars / "connect"
        self.plugins = jars / "connect-plugins"
        if not (self.plugins / "debezium-jdbc").is_dir() or not self.classpath.is_dir():
            raise SystemExit(f"Kafka Connect or the Debezium sink is missing under {jars}: run `bash deploy/setup.sh`")
        self.settings, self.home = settings, home
        home.mkdir(parents=True, exist_ok=True)

    def measure(self, topic: str, rows: int, done: Callable[[], bool], postgres: PostgresCpu, label: str) -> Run:
        """Start the worker, wait until `done`, stop it: its task's start to the last row written."""
        worker, sink, log = self._configs(topic, label)
        launched = time.monotonic()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    java_executable(),
                    "-Xmx2g",
                    f"-Dlog4j2.configurationFile={self._log4j()}",
                    "-cp",
                    f"{self.classpath}/*",
                    "org.apache.kafka.connect.cli.ConnectStandalone",
                    str(worker),
                    str(sink),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        cpu = CpuSamples(process.pid, postgres)
        cpu.start()
        try:
            _wait(done, process, launched, log, poll_s=0.1)
            finished = time.time()
            time.sleep(0.2)
            peak_kib = peak_rss_kib(process.pid)
        finally:
            cpu.stopped.set()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.copy(log, RESULTS / f"consumer_apply.debezium-{label}.log")
        started = _task_started(log)
        (cpu0, pg0), (cpu1, pg1) = cpu.at(started), cpu.at(finished)
        return Run(rows, finished - started, cpu1 - cpu0, pg1 - pg0, peak_kib / 1024)

    def _configs(self, topic: str, label: str) -> tuple[Path, Path, Path]:
        kafka, pg = self.settings.kafka, self.settings.postgres
        worker = self.home / "worker.properties"
        worker.write_text(
            "\n".join(
                [
                    f"bootstrap.servers={kafka.bootstrap_servers}",
                    "key.converter=org.apache.kafka.connect.json.JsonConverter",
                    "value.converter=org.apache.kafka.connect.json.JsonConverter",
                    "key.converter.schemas.enable=true",
                    "value.converter.schemas.enable=true",
                    f"offset.storage.file.filename={self.home / 'offsets'}",
                    f"plugin.path={self.plugins}",
                    "plugin.discovery=only_scan",
                    f"listeners=http://127.0.0.1:{free_port()}",
                    # The sink writes what one poll returns as one batch: the same 10,000 both ways.
                    "consumer.max.poll.records=10000",
                    "consumer.auto.offset.reset=earliest",
                ]
            )
            + "\n"
        )
        password = pg.password.get_secret_value() if pg.password else ""
        sink = self.home / "sink.properties"
        sink.write_text(
            "\n".join(
                [
                    "name=orders-debezium",
                    "connector.class=io.debezium.connector.jdbc.JdbcSinkConnector",
                    "tasks.max=1",
                    f"topics={topic}",
                    f"connection.url=jdbc:postgresql://{pg.host}:{pg.port}/{pg.dbname}",
                    f"connection.username={pg.user}",
                    f"connection.password={password}",
                    "insert.mode=upsert",
                    "delete.enabled=false",
                    "primary.key.mode=record_key",
                    f"primary.key.fields={KEY}",
                    "schema.evolution=none",
                    "collection.name.format=orders_debezium",
                    "batch.size=10000",
                ]
            )
            + "\n"
        )
        sink.chmod(0o600)
        return worker, sink, self.home / f"connect-{label}.log"

    def _log4j(self) -> Path:
        path = self.home / "log4j2.properties"
        path.write_text(
            "rootLogger.level=WARN\nrootLogger.appenderRef.stdout.ref=STDOUT\n"
            "appender.stdout.type=Console\nappender.stdout.name=STDOUT\n"
            "appender.stdout.layout.type=PatternLayout\nappender.stdout.layout.pattern=[%d{ISO8601}{UTC}] %p %m (%c)%n\n"
            "logger.task.name=org.apache.kafka.connect.runtime.WorkerSinkTask\nlogger.task.level=INFO\n"
        )
        return path


def _task_started(log: Path) -> float:
    """When the sink task finished starting (its log line, UTC), as a Unix time."""
    for line in log.read_text(errors="replace").splitlines():
        if "Sink task finished initialization and start" in line:
            stamp = re.match(r"\[(\S+)\]", line)
            if stamp:
                return dt.datetime.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%S,%f").replace(tzinfo=dt.UTC).timestamp()
    raise SystemExit(f"the sink task never started:\n{log.read_text(errors='replace')[-3000:]}")


def _connect_records(orders: pa.Table) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) per row as Kafka Connect's JsonConverter reads them (schemas enabled)."""
    key_schema = {
        "type": "struct",
        "optional": False,
        "name": "orders.Key",
        "fields": [_connect_field(orders.schema.field(KEY))],
    }
    value_schema = {
        "type": "struct",
        "optional": False,
        "name": "orders.Value",
        "fields": [_connect_field(f) for f in orders.schema],
    }
    key_head = orjson.dumps({"schema": key_schema})[:-1] + b',"payload":'
    value_head = orjson.dumps({"schema": value_schema})[:-1] + b',"payload":'
    epoch = dt.date(1970, 1, 1)
    decimals = [f.name for f in orders.schema if pa.types.is_decimal(f.type)]
    dates = [f.name for f in orders.schema if pa.types.is_date(f.type)]
    ready = orders
    for name in decimals:  # exact: the decimal's text, as a JSON number
        ready = ready.set_column(ready.schema.get_field_index(name), name, pc.cast(ready[name], pa.string()))
    for batch in ready.to_batches(max_chunksize=50_000):
        for row in batch.to_pylist():
            for name in dates:
                row[name] = (row[name] - epoch).days
            payload = orjson.dumps(row)
            for name in decimals:
                payload = payload.replace(f'"{name}":"{row[name]}"'.encode(), f'"{name}":{row[name]}'.encode(), 1)
            yield (
                key_head + orjson.dumps({KEY: row[KEY]}) + b"}",
                value_head + payload + b"}",
            )


def _connect_field(f: pa.Field) -> dict[str, Any]:
    optional = f.name != KEY
    if pa.types.is_decimal(f.type):
        parameters = {"scale": str(f.type.scale), "connect.decimal.precision": str(f.type.precision)}
        return {
            "type": "bytes",
            "optional": optional,
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": parameters,
            "field": f.name,
        }
    if pa.types.is_date(f.type):
        return {
            "type": "int32",
            "optional": optional,
            "name": "org.apache.kafka.connect.data.Date",
            "version": 1,
            "field": f.name,
        }
    kinds = {pa.int64(): "int64", pa.int32(): "int32", pa.string(): "string"}
    return {"type": kinds[f.type], "optional": optional, "field": f.name}


# --- the topic ---------------------------------------------------------------------------------


def produce(settings: LakesyncSettings, topic: str, records: Iterator[tuple[bytes, bytes]]) -> int:
    """Produce every (key, value); returns the count."""
    producer = Producer(producer_config(settings.kafka))
    headers: ProducedHeaders = [("lakesync-envelope", b"1"), ("lakesync-table", TABLE.encode())]
    count = 0
    for key, value in records:
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


def _envelopes(orders: pa.Table, columns: list[TargetColumn], *, version: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) per row: the bytes encode_event makes, built from Arrow-cast strings (fast)."""
    _check_encoding(orders.slice(0, 1000), columns, version)
    yield from _fast_envelopes(orders, columns, version)


def _fast_envelopes(orders: pa.Table, columns: list[TargetColumn], version: int) -> Iterator[tuple[bytes, bytes]]:
    as_json = _json_ready(orders)
    columns_json = columns_text(columns)
    for batch in as_json.to_batches(max_chunksize=50_000):
        for after in batch.to_pylist():
            body = {
                "v": 1,
                "op": "upsert",
                "table": TABLE,
                "source": f"tpch/{TABLE}",
                "version": version,
                "commit_ts": COMMIT_TS,
                "batch_id": 0,
                "hash": None,
                "key": {KEY: after[KEY]},
                "after": after,
                "columns": columns_json,
            }
            yield orjson.dumps({KEY: after[KEY]}), orjson.dumps(body)


def _check_encoding(sample: pa.Table, columns: list[TargetColumn], version: int) -> None:
    """The fast encoder must produce what changes.envelope.encode_event produces."""
    commit_ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for (key, value), after in zip(_fast_envelopes(sample, columns, version), sample.to_pylist(), strict=True):
        event = ChangeEvent(
            op=Op.UPSERT,
            table=TABLE,
            key=(after[KEY],),
            key_names=(KEY,),
            version=version,
            after=after,
            columns=tuple(columns),
            commit_ts=commit_ts,
            batch_id=0,
            source=f"tpch/{TABLE}",
        )
        ref_key, ref_value, _ = encode_event(event)
        assert (orjson.loads(key), orjson.loads(value)) == (orjson.loads(ref_key), orjson.loads(ref_value))


def _updated(orders: pa.Table) -> pa.Table:
    """The same rows with one column changed, so an update is a real update (o_shippriority 0 → 1)."""
    index = orders.schema.get_field_index("o_shippriority")
    return orders.set_column(index, "o_shippriority", pa.array([1] * orders.num_rows, orders.schema.field(index).type))


# --- PostgreSQL side ---------------------------------------------------------------------------


def _stored(settings: LakesyncSettings) -> int:
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        found = conn.execute("SELECT to_regclass('lakesync.consumer_offsets')").fetchone()
        if not found or found[0] is None:
            return 0
        total = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM lakesync.consumer_offsets").fetchone()
    return int(total[0]) if total else 0


def _count(settings: LakesyncSettings, table: sql.Identifier, shippriority: int) -> int:
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        found = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE o_shippriority = %s").format(table), (shippriority,)
        ).fetchone()
    return int(found[0]) if found else 0


def _check_table(settings: LakesyncSettings, table: sql.Identifier, rows: int, *, shippriority: int) -> None:
    """Every row is there, once, with the expected change applied."""
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        found = conn.execute(
            sql.SQL(
                "SELECT count(*), count(DISTINCT o_orderkey), sum(o_totalprice) FILTER (WHERE o_shippriority = %s) FROM {}"
            ).format(table),
            (shippriority,),
        ).fetchone()
        expected = conn.execute(
            sql.SQL("SELECT sum(o_totalprice) FROM {}").format(sql.Identifier("public", TABLE))
        ).fetchone()
    assert found is not None and found[0] == found[1] == rows, f"{table.as_string(None)}: {found} for {rows} rows"
    assert expected is not None and found[2] == expected[0], f"{table.as_string(None)}: values differ from the source"


def _wait(
    done: Callable[[], bool], process: subprocess.Popen[bytes], launched: float, log: Path, poll_s: float = 0.25
) -> None:
    while not done():
        if process.poll() is not None:
            raise SystemExit(
                f"{cast(list[str], process.args)[0]} exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        if time.monotonic() - launched > 1800:
            raise SystemExit("did not finish within 30 min")
        time.sleep(poll_s)


def _instant(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


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
    overrides["kafka"] = {**overrides.get("kafka", {}), "topic_partitions": PARTITIONS}
    return LakesyncSettings(
        **overrides,
        tables=[TableMapping(name=TABLE, source_path=f"tpch/{TABLE}", target_table=TABLE, key_columns=[KEY])],
        consumer=ConsumerSettings(group_id="bench", group_instance_id="bench", **BENCH_CONSUMER),
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
    copy_rate = f["copy"]["rows_per_s"]
    paths = [
        ("(a) `lakesync consume`, inserts into an empty table", "lakesync_insert"),
        ("(a) `lakesync consume`, updates of every row", "lakesync_update"),
        ("(b) raw ceiling: one `COPY` (CSV) into an empty equal table", "copy"),
        ("(d) Debezium JDBC sink 3.6.0.Final, Kafka Connect 4.3.1 standalone, upsert: inserts", "debezium_insert"),
        ("(d) Debezium JDBC sink: updates of every row", "debezium_update"),
    ]
    lines = [
        START,
        "## Consumer apply (`python -m bench.consumer_apply`)",
        "",
        f"{f['machine']}, fresh embedded Kafka + PostgreSQL, one run (the machine is shared: compare ratios within it).",
        (
            f"TPC-H `orders` SF{f['scale']:g}: {f['rows']:,} rows on {f['partitions']}-partition topics, as lakesync "
            "upsert envelopes (a) and as Kafka Connect JSON with schemas (d); updates are the same rows again with "
            "`o_shippriority` changed. Every final table is checked against the source."
        ),
        "",
        "| path | rows/s | vs raw COPY | process CPU s | CPU µs/row | PostgreSQL CPU s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, name in paths:
        if name not in f:
            continue
        p = f[name]
        cpu = "—" if p["cpu_s"] is None else f"{p['cpu_s']:.1f}"
        per_row = "—" if p["cpu_us_per_row"] is None else f"{p['cpu_us_per_row']:.1f}"
        rss = "—" if p["rss_mib"] is None else f"{p['rss_mib']:,}"
        lines.append(
            f"| {label} | {p['rows_per_s']:,} | {p['rows_per_s'] / copy_rate:.2f}× | {cpu} | {per_row} | "
            f"{p['postgres_cpu_s']:.1f} | {rss} |"
        )
    lines += ["", *_verdicts(f), END]
    return "\n".join(lines)


def _verdicts(f: dict[str, Any]) -> list[str]:
    copy_rate = f["copy"]["rows_per_s"]
    found = []
    for kind in ("insert", "update"):
        ours = f[f"lakesync_{kind}"]
        ratio = ours["rows_per_s"] / copy_rate
        line = f"- {kind}s: ≥ 0.5× raw COPY — {'met' if ratio >= 0.5 else 'MISSED'} ({ratio:.2f}×); "
        line += f"consumer CPU ≤ 5 µs/row — {'met' if ours['cpu_us_per_row'] <= 5 else 'MISSED'} ({ours['cpu_us_per_row']:.1f}); "
        line += f"RSS < 300 MB — {'met' if ours['rss_mib'] * 1.048576 < 300 else 'MISSED'} ({ours['rss_mib']} MiB)"
        if f"debezium_{kind}" in f:
            theirs = f[f"debezium_{kind}"]
            line += (
                f"; vs the Debezium sink: {ours['rows_per_s'] / theirs['rows_per_s']:.1f}× the rows/s, "
                f"{theirs['cpu_us_per_row'] / ours['cpu_us_per_row']:.1f}× less CPU per row"
            )
        found.append(line + ".")
    return found


if __name__ == "__main__":
    main(sys.argv[1:])
