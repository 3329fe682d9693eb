"""End-to-end latency of the streaming path: Delta commit → row visible in PostgreSQL.

    .venv/bin/python -m bench.stream_publish [--scales 1,10] [--commits 30] [--changed 1000]

Starts fresh embedded Kafka + PostgreSQL, then, for each scale of TPC-H `orders` (SF1: 1.5 M
rows, SF10: 15 M rows), in one run:

1. writes `orders` to a Delta table with the change data feed and deletion vectors on (not timed);
2. brings it into PostgreSQL: at the first scale through the stream's initial snapshot
   (`lakesync stream --once` on an empty state; rows/s from the job's batch lines, driver
   memory sampled), then the consumer; at the other scales with `lakesync rebuild` (shadow COPY
   and the stream's state loaded at the same version), timed;
3. runs `lakesync stream` and `lakesync consume` (subprocesses, as deployed) while this process
   commits `--commits` UPDATEs of `--changed` rows, one every `--interval` s, after
   `--warmup` untimed ones. A commit's latency is the moment its last row is visible in
   PostgreSQL (polled every 20 ms) minus the Delta commit's timestamp. Micro-batch durations
   and where their time went come from the stream's `batch published` lines.

Writes the stream-publish section of BENCHMARKS.md and `bench/results/stream_publish.json`
(scale → p50_s, p99_s, median_batch_s, snapshot_rows_per_s, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.consumer_apply import PostgresCpu, process_cpu_s
from bench.report import children, fresh_stack, machine, peak_rss_kib, rss_kib, write_results, write_section
from bench.tpch import tpch_parquet
from connectors.spark import build_spark_session
from deploy.embedded_stack import EmbeddedStack
from lakesync.config import LakesyncSettings, TableMapping, load_settings

START, END = "<!-- stream-publish:start -->", "<!-- stream-publish:end -->"
KEY = "o_orderkey"
TRIGGER_S = 0.5


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scales", default="1,10", help="TPC-H scale factors, comma separated")
    parser.add_argument("--commits", type=int, default=30, help="timed commits per scale")
    parser.add_argument("--changed", type=int, default=1000, help="rows updated per commit")
    parser.add_argument("--interval", type=float, default=4.0, help="seconds between commits")
    parser.add_argument("--warmup", type=int, default=3, help="untimed commits first")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave the files alone")
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]

    results: dict[str, dict[str, Any]] = {}
    with fresh_stack("lakesync-bench-stream-") as (stack, home):
        spark = build_spark_session(_settings(stack, home, []).spark)
        for i, scale in enumerate(scales):
            results[f"{scale:g}"] = measure_scale(spark, stack, home, scale, args, snapshot=i == 0)
        spark.stop()
    section = render(results, args)
    print(section)
    if not args.no_write:
        write_section(START, END, section)
        write_results("stream_publish", results)


def measure_scale(
    spark: Any, stack: EmbeddedStack, home: Path, scale: float, args: argparse.Namespace, *, snapshot: bool
) -> dict[str, Any]:
    table = _mapping(home, scale)
    settings = _settings(stack, home, [table])
    rows = _write_delta(spark, table, scale)
    figures: dict[str, Any] = {"rows": rows}
    if snapshot:
        figures.update(_initial_snapshot(stack, settings, home, table))
    else:
        figures.update(_rebuild(stack, settings, home, table))
        # One untimed commit after the rebuilt version V, so the stream starts at V + 1. Started
        # before it, the stream would read V's own changes again: here the whole 15 M-row table,
        # as no-ops (README, "Rebuild").
        _commit(spark, table, args.warmup + args.commits, args.changed)
    figures.update(_incremental(spark, stack, settings, home, table, args))
    return figures


def _initial_snapshot(
    stack: EmbeddedStack, settings: LakesyncSettings, home: Path, table: TableMapping
) -> dict[str, Any]:
    """`lakesync stream --once` on an empty state, then the consumer until it applied everything."""
    started = time.monotonic()
    postgres = PostgresCpu(stack.postgres.pid)
    pg_cpu0 = postgres.now()
    run = _run(stack, settings, home, f"snapshot-{table.name}", ["stream", "--once"])
    batches = _batch_lines(home / f"snapshot-{table.name}.log")
    seconds = sum(b["duration_s"] for b in batches)
    upserts = sum(b["upserts"] for b in batches)
    consumer = _Process(stack, settings, home, f"consume-{table.name}", ["consume"])
    try:
        applied_s = _wait_rows(settings, table, upserts, timeout_s=1800)
        consumer_cpu_s = consumer.cpu_s()
    finally:
        consumer.stop()
    return {
        "bootstrap": "initial snapshot",
        "snapshot_rows_per_s": upserts / seconds if seconds else 0.0,
        "snapshot_batches": len(batches),
        "snapshot_batch_s": seconds,
        "snapshot_wall_s": time.monotonic() - started - applied_s,
        "snapshot_applied_s": applied_s,
        "snapshot_driver_python_peak_mib": run["python_peak_mib"],
        "snapshot_driver_jvm_peak_mib": run["jvm_peak_mib"],
        "snapshot_cpu_us_per_row": {
            "stream": 1e6 * run["cpu_s"] / upserts,
            "consume": 1e6 * consumer_cpu_s / upserts,
            "postgres": 1e6 * (postgres.now() - pg_cpu0) / upserts,
        },
    }


def _rebuild(stack: EmbeddedStack, settings: LakesyncSettings, home: Path, table: TableMapping) -> dict[str, Any]:
    started = time.monotonic()
    run = _run(stack, settings, home, f"rebuild-{table.name}", ["rebuild", "--table", table.name])
    return {
        "bootstrap": "lakesync rebuild",
        "rebuild_s": time.monotonic() - started,
        "rebuild_driver_jvm_peak_mib": run["jvm_peak_mib"],
    }


def _incremental(
    spark: Any,
    stack: EmbeddedStack,
    settings: LakesyncSettings,
    home: Path,
    table: TableMapping,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Stream and consumer running; commit, then time until every row of the commit is visible."""
    log_name = f"stream-{table.name}"
    consumer = _Process(stack, settings, home, f"consume-live-{table.name}", ["consume"])
    stream = _Process(stack, settings, home, log_name, ["stream"])
    latencies: list[float] = []
    postgres = PostgresCpu(stack.postgres.pid)
    cpu0: dict[str, float] = {}
    try:
        _wait_for_log(home / f"{log_name}.log", '"stream started"')
        time.sleep(3 * TRIGGER_S)
        for i in range(args.warmup + args.commits):
            if i == args.warmup:  # the timed window starts: CPU of each process from here
                cpu0 = {"stream": stream.cpu_s(), "consume": consumer.cpu_s(), "postgres": postgres.now()}
            committed_at = _commit(spark, table, i, args.changed)
            visible_at = _wait_visible(settings, table, f"bench {i} ", _key_range(i, args.changed), args.changed)
            if i >= args.warmup:
                latencies.append(visible_at - committed_at)
            time.sleep(max(args.interval - (time.time() - committed_at), 0))
        now = {"stream": stream.cpu_s(), "consume": consumer.cpu_s(), "postgres": postgres.now()}
    finally:
        stream.stop()
        consumer.stop()
    batches = [b for b in _batch_lines(home / f"{log_name}.log") if b.get("upserts")][args.warmup :]
    latencies.sort()
    return {
        "commits": len(latencies),
        "changed": args.changed,
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(int(0.99 * len(latencies)), len(latencies) - 1)],
        "max_s": latencies[-1],
        "median_batch_s": statistics.median(b["duration_s"] for b in batches) if batches else None,
        "batches": len(batches),
        "median_batch_profile_s": _median_profile(batches),
        "stream_driver_python_peak_mib": stream.python_peak_mib,
        "stream_driver_jvm_peak_mib": stream.jvm_peak_mib,
        # CPU over the timed window (idle trigger polls included) per changed row.
        "cpu_us_per_changed_row": {k: 1e6 * (now[k] - cpu0[k]) / (len(latencies) * args.changed) for k in cpu0},
    }


def _key_range(i: int, changed: int) -> tuple[int, int]:
    """The orderkeys commit `i` updates: `changed` orders (orderkeys are every 4th integer)."""
    low = i * changed * 4 + 1
    return low, low + changed * 4 - 1


def _commit(spark: Any, table: TableMapping, i: int, changed: int) -> float:
    """UPDATE `changed` orders (a key range); the commit's time."""
    low, high = _key_range(i, changed)
    spark.sql(
        f"UPDATE delta.`{table.source}` SET o_comment = concat('bench {i} ', o_comment) "
        f"WHERE {KEY} BETWEEN {low} AND {high}"
    )
    row = spark.sql(f"DESCRIBE HISTORY delta.`{table.source}` LIMIT 1").first()
    return float(row["timestamp"].timestamp())


def _wait_visible(
    settings: LakesyncSettings,
    table: TableMapping,
    marker: str,
    keys: tuple[int, int],
    rows: int,
    timeout_s: float = 120,
) -> float:
    """Poll the target until `rows` rows carry `marker`; the wall time they all were visible.

    The poll reads only the commit's key range through the primary key: a scan of the whole
    table every 20 ms would cost PostgreSQL a core at SF10 and slow what it measures.
    """
    query = sql.SQL("SELECT count(*) FROM {} WHERE {} BETWEEN %s AND %s AND o_comment LIKE %s").format(
        sql.Identifier(table.target_schema, table.target_table), sql.Identifier(KEY)
    )
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query, (*keys, marker + "%")).fetchone()
            if row and row[0] >= rows:
                return time.time()
            time.sleep(0.02)
    raise SystemExit(f"{marker!r}: not all {rows} rows visible in PostgreSQL after {timeout_s} s")


def _wait_rows(settings: LakesyncSettings, table: TableMapping, rows: int, timeout_s: float) -> float:
    """Until the target holds `rows` rows; seconds waited."""
    started = time.monotonic()
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.target_schema, table.target_table))
    while time.monotonic() - started < timeout_s:
        try:
            with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
                row = conn.execute(query).fetchone()
            if row and row[0] >= rows:
                return time.monotonic() - started
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(1.0)
    raise SystemExit(f"the consumer applied fewer than {rows} rows in {timeout_s} s")


def _median_profile(batches: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of each phase the stream logs per batch (summed over the batch's tasks)."""
    phases = ("lookup_s", "produce_s", "flush_s", "record_s")
    return {p: statistics.median(b.get(p, 0.0) for b in batches) for p in phases} if batches else {}


class _Process:
    """A lakesync subcommand in a subprocess, its driver and JVM memory sampled until stopped."""

    def __init__(
        self, stack: EmbeddedStack, settings: LakesyncSettings, home: Path, name: str, args: list[str]
    ) -> None:
        log = (home / f"{name}.log").open("a")
        self.process = subprocess.Popen(_command(stack, args), env=_env(settings), stdout=log, stderr=subprocess.STDOUT)
        self.python_peak_mib = self.jvm_peak_mib = 0.0
        self._child_cpu: dict[int, float] = {}  # last reading of each child (the JVM): gone ones keep theirs
        self._cpu_lock = threading.Lock()  # the sampler thread reads it too
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set() and self.process.poll() is None:
            self.python_peak_mib = max(self.python_peak_mib, peak_rss_kib(self.process.pid) / 1024)
            jvm = sum(rss_kib(c) for c in children(self.process.pid)) / 1024
            self.jvm_peak_mib = max(self.jvm_peak_mib, jvm)
            self.cpu_s()
            time.sleep(0.5)

    def cpu_s(self) -> float:
        """CPU seconds so far of the command and its JVM (utime + stime, from /proc)."""
        with self._cpu_lock:
            for child in children(self.process.pid):
                self._child_cpu[child] = max(self._child_cpu.get(child, 0.0), process_cpu_s(child))
            return process_cpu_s(self.process.pid) + sum(self._child_cpu.values())

    def stop(self) -> None:
        self._stop.set()
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _run(stack: EmbeddedStack, settings: LakesyncSettings, home: Path, name: str, args: list[str]) -> dict[str, Any]:
    """Run a subcommand to its end; its peak memory."""
    process = _Process(stack, settings, home, name, args)
    cpu_s = 0.0
    while process.process.poll() is None:  # read CPU while it runs: a reaped process has no /proc entry
        cpu_s = process.cpu_s()
        time.sleep(0.2)
    code = process.process.returncode
    process.stop()
    if code != 0:
        raise SystemExit(f"lakesync {' '.join(args)} failed ({code}); see {home / (name + '.log')}")
    return {"python_peak_mib": process.python_peak_mib, "jvm_peak_mib": process.jvm_peak_mib, "cpu_s": cpu_s}


def _command(stack: EmbeddedStack, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "lakesync", "--config", str(stack.config_file), "--log-format", "json", *args]


def _env(settings: LakesyncSettings) -> dict[str, str]:
    return {
        **os.environ,
        "LAKESYNC_TABLES": "[" + ",".join(t.model_dump_json() for t in settings.tables) + "]",
        "LAKESYNC_STATE_DIR": str(settings.state_dir),
        "LAKESYNC_SPARK": json.dumps({"ui_enabled": False}),
        "LAKESYNC_STREAM": json.dumps({"trigger_interval_s": TRIGGER_S}),
        "LAKESYNC_CONSUMER": json.dumps({"group_id": "bench"}),
    }


def _batch_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if '"batch published"' in line]


def _write_delta(spark: Any, table: TableMapping, scale: float) -> int:
    frame = spark.read.parquet(str(tpch_parquet("orders", scale)))
    # Deletion vectors keep each UPDATE cheap: the writer shares these cores with the pipeline.
    (
        frame.write.format("delta")
        .option("delta.enableChangeDataFeed", "true")
        .option("delta.enableDeletionVectors", "true")
        .save(table.source)
    )
    return int(spark.read.format("delta").load(table.source).count())


def _mapping(home: Path, scale: float) -> TableMapping:
    name = f"orders_sf{scale:g}".replace(".", "_")
    return TableMapping(name=name, source_path=str(home / "lake" / name), target_table=name, key_columns=[KEY])


def _settings(stack: EmbeddedStack, home: Path, tables: list[TableMapping]) -> LakesyncSettings:
    return load_settings(
        None, **stack.settings_overrides(), tables=tables, state_dir=home / "state", spark={"ui_enabled": False}
    )


def _wait_for_log(path: Path, marker: str, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and marker in path.read_text()):
        if time.monotonic() > deadline:
            raise SystemExit(f"no {marker} in {path} after {timeout_s} s")
        time.sleep(0.5)


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    scales = list(results)
    first, last = results[scales[0]], results[scales[-1]]
    ratio = (
        last["median_batch_s"] / first["median_batch_s"]
        if last.get("median_batch_s") and first.get("median_batch_s")
        else None
    )
    lines = [
        START,
        "## Streaming path: Delta commit → PostgreSQL (`python -m bench.stream_publish`)",
        "",
        f"{machine()}, fresh embedded Kafka + PostgreSQL, Spark `local[{os.cpu_count()}]`, stream trigger {TRIGGER_S:g} s.",
        (
            f"Per scale of TPC-H `orders`: `lakesync stream` and `lakesync consume` run while {args.commits} commits "
            f"of {args.changed:,} updated rows land, one every {args.interval:g} s, made by a third process's Spark "
            f"session on the same cores (after {args.warmup} untimed). Latency = the moment a commit's last row is "
            "visible in PostgreSQL − the Delta commit's timestamp. CPU: utime + stime from /proc of each process "
            "(the stream's driver and its JVM) over the timed commits, idle trigger polls included, divided by the "
            "rows changed; 2 cores = 2 CPU s per second."
        ),
        "",
        "| scale | rows | p50 s | p99 s | max s | median micro-batch s | batch profile (lookup / produce / flush / record s) | CPU µs per changed row (stream / consume / PostgreSQL) | driver Python / JVM peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for scale, r in results.items():
        p = r.get("median_batch_profile_s") or {}
        profile = " / ".join(_f(p.get(k)) for k in ("lookup_s", "produce_s", "flush_s", "record_s"))
        cpu = " / ".join(f"{r['cpu_us_per_changed_row'][k]:,.0f}" for k in ("stream", "consume", "postgres"))
        lines.append(
            f"| {scale} | {r['rows']:,} | {_f(r['p50_s'])} | {_f(r['p99_s'])} | {_f(r['max_s'])} | "
            f"{_f(r['median_batch_s'])} | {profile} | {cpu} | {r['stream_driver_python_peak_mib']:.0f} / "
            f"{r['stream_driver_jvm_peak_mib']:.0f} |"
        )
    lines += [
        "",
        "Targets (2 cores): p50 < 2 s and p99 < 5 s at every scale; median micro-batch at the largest scale ≤ 1.3× the smallest's; initial snapshot ≥ 40 k rows/s at SF1.",
    ]
    for scale, r in results.items():
        lines.append(f"- SF {scale}: p50 {_verdict(r['p50_s'], 2.0)}, p99 {_verdict(r['p99_s'], 5.0)}.")
    if ratio is not None:
        lines.append(
            f"- Median micro-batch SF {scales[-1]} / SF {scales[0]}: {ratio:.2f}× ({'met' if ratio <= 1.3 else 'MISSED'})."
        )
    if "snapshot_rows_per_s" in first:
        rate = first["snapshot_rows_per_s"]
        lines.append(
            f"- Initial snapshot at SF {scales[0]}: {rate:,.0f} rows/s over {first['snapshot_batches']} batch(es) "
            f"({first['snapshot_batch_s']:.1f} s of batches, {first['snapshot_wall_s']:.1f} s wall with JVM start; "
            f"the consumer then applied it in {first['snapshot_applied_s']:.0f} s) "
            f"({'met' if rate >= 40_000 else 'MISSED'}); driver Python peak {first['snapshot_driver_python_peak_mib']:.0f} MiB; "
            + "CPU µs per row: stream {stream:.1f} (driver + JVM), consume {consume:.1f}, PostgreSQL {postgres:.1f}.".format(
                **first["snapshot_cpu_us_per_row"]
            )
        )
    for scale, r in results.items():
        if "rebuild_s" in r:
            lines.append(f"- SF {scale} loaded by `lakesync rebuild` in {r['rebuild_s']:.0f} s (not a target).")
    lines.append(END)
    return "\n".join(lines)


def _verdict(value: float, limit: float) -> str:
    return f"{value:.2f} s ({'met' if value < limit else 'MISSED'})"


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main(sys.argv[1:])
