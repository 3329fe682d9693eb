"""Streaming job throughput and latency: TPC-H `orders` as a Delta table → `lakesync stream` → Kafka.

    .venv/bin/python -m bench.stream_publish [--scales 0.1,1] [--commits 20] [--changed 1000]

Starts fresh embedded Kafka + PostgreSQL, then, for each scale:

1. writes `orders` to a Delta table with the change data feed on (not timed);
2. initial snapshot: `lakesync stream --once` in a subprocess publishes every row; measured from
   the job's own batch log line (rows / batch seconds) and from process start to exit, with the
   peak memory of the driver process and of its JVM (in local mode the JVM also runs the tasks);
3. at the largest scale only, incremental: `lakesync stream` keeps running while this process
   commits `--commits` updates of `--changed` rows each; latency of each published message =
   its Kafka timestamp (set when produced) - its Delta commit timestamp (in the envelope).

The figures replace the stream-publish section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.report import children, machine, peak_rss_kib, rss_kib, write_section
from bench.tpch import tpch_parquet
from connectors.spark import build_spark_session
from deploy.embedded_stack import EmbeddedStack
from lakesync.config import LakesyncSettings, TableMapping, load_settings

START, END = "<!-- stream-publish:start -->", "<!-- stream-publish:end -->"
KEY = "o_orderkey"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.1,1", help="TPC-H scale factors, comma separated")
    parser.add_argument("--commits", type=int, default=20, help="incremental commits to time")
    parser.add_argument("--changed", type=int, default=1000, help="rows changed per incremental commit")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between incremental commits")
    parser.add_argument("--warmup", type=int, default=2, help="incremental commits made first and not timed")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]

    home = Path(tempfile.mkdtemp(prefix="lakesync-bench-stream-"))
    home.chmod(0o755)
    stack = EmbeddedStack.at(home / "embedded")
    stack.up()
    try:
        spark = build_spark_session(_settings(stack, home, []).spark)
        snapshots = [measure_snapshot(spark, stack, home, scale) for scale in scales]
        incremental = measure_incremental(spark, stack, home, max(scales), args)
        spark.stop()
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    section = render(snapshots, incremental, args)
    print(section)
    if not args.no_write:
        write_section(START, END, section)


def measure_snapshot(spark: Any, stack: EmbeddedStack, home: Path, scale: float) -> dict[str, Any]:
    table = _mapping(home, scale)
    rows = _write_delta(spark, table, scale)
    settings = _settings(stack, home, [table])
    started = time.monotonic()
    run = _run_stream(stack, settings, home, table.name, once=True)
    figures = {"scale": scale, "rows": rows, "wall_s": time.monotonic() - started, **run}
    batch = _sum_batches(run["batches"])
    figures.update(batch)
    figures["published_on_topic"] = _topic_count(settings, table.topic_name)
    return figures


def measure_incremental(
    spark: Any, stack: EmbeddedStack, home: Path, scale: float, args: argparse.Namespace
) -> dict[str, Any]:
    """Keep the job running, commit `commits` updates of `changed` rows, time each message.

    The first `warmup` commits warm the JVMs up and are not timed.
    """
    commits, changed = args.commits, args.changed
    table = _mapping(home, scale)  # the snapshot already published it: only new commits flow
    settings = _settings(stack, home, [table])
    stop = threading.Event()
    job: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: job.update(_run_stream(stack, settings, home, table.name, once=False, stop=stop))
    )
    runner.start()
    try:
        _wait_for_log(home / f"stream-{table.name}.log", '"stream started"')
        before = _topic_count(settings, table.topic_name)
        started = 0.0
        for i in range(args.warmup + commits):
            if i == args.warmup:
                time.sleep(args.interval)
                started = time.time()
            low = (i * changed * 4) + 1  # orderkeys are sparse: every 4th of 1..4*rows exists
            spark.sql(
                f"UPDATE delta.`{table.source}` SET o_comment = concat('bench {i} ', o_comment) "
                f"WHERE {KEY} BETWEEN {low} AND {low + changed * 4 - 1}"
            )
            time.sleep(args.interval)
        expected = before + (args.warmup + commits) * changed
        latencies = _latencies(settings, table.topic_name, expected, since=started, timeout_s=300)
    finally:
        stop.set()
        runner.join(120)
    latencies.sort()
    # The job's log holds the snapshot run's batches too; keep the ones of this run.
    incremental = [b for b in job.get("batches", []) if (b.get("max_version") or 0) > args.warmup]
    return {
        "commits": commits,
        "changed": changed,
        "messages": len(latencies),
        "p50_s": statistics.median(latencies) if latencies else None,
        "p99_s": latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "max_s": latencies[-1] if latencies else None,
        "batches": len(incremental),
        "batch_median_s": statistics.median(b["duration_s"] for b in incremental) if incremental else None,
        "read_median_s": statistics.median(b["read_s"] for b in incremental) if incremental else None,
        "publish_median_s": statistics.median(b["publish_s"] for b in incremental) if incremental else None,
    }


def _run_stream(
    stack: EmbeddedStack,
    settings: LakesyncSettings,
    home: Path,
    name: str,
    *,
    once: bool,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Run `lakesync stream` in a subprocess; sample the memory of it and its JVM child."""
    env = {
        **os.environ,
        "LAKESYNC_TABLES": "[" + ",".join(t.model_dump_json() for t in settings.tables) + "]",
        "LAKESYNC_STATE_DIR": str(settings.state_dir),
        "LAKESYNC_SPARK": json.dumps({"ui_enabled": False}),
        "LAKESYNC_STREAM": json.dumps({"trigger_interval_s": 0.5}),
    }
    log_path = home / f"stream-{name}.log"
    command = [sys.executable, "-m", "lakesync", "--config", str(stack.config_file), "--log-format", "json", "stream"]
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [*command, *(["--once"] if once else [])], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    python_peak = jvm_peak = 0
    while process.poll() is None:
        python_peak = max(python_peak, peak_rss_kib(process.pid))
        jvm_peak = max(jvm_peak, sum(rss_kib(c) for c in children(process.pid)))
        if stop is not None and stop.is_set():
            process.terminate()
        time.sleep(0.2)
    if process.returncode not in (0, -15):
        raise SystemExit(f"lakesync stream failed ({process.returncode}); see {log_path}")
    batches = [json.loads(line) for line in log_path.read_text().splitlines() if '"batch published"' in line]
    return {"python_peak_mib": python_peak / 1024, "jvm_peak_mib": jvm_peak / 1024, "batches": batches}


def _sum_batches(batches: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = sum(b["duration_s"] for b in batches)
    upserts = sum(b["upserts"] for b in batches)
    return {
        "batch_count": len(batches),
        "batch_s": seconds,
        "upserts": upserts,
        "rows_per_s": upserts / seconds if seconds else 0.0,
        "read_s": sum(b["read_s"] for b in batches),
        "publish_s": sum(b["publish_s"] for b in batches),
        "compact_s": sum(b["compact_s"] for b in batches),
    }


def _latencies(settings: LakesyncSettings, topic: str, expected: int, since: float, timeout_s: float) -> list[float]:
    """Kafka timestamp - Delta commit timestamp, for every message of a commit made after `since`."""
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    seen, latencies = 0, []
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 1.0):
                if message.error() or message.value() is None:
                    continue
                seen += 1
                envelope = json.loads(message.value())
                committed = dt.datetime.fromisoformat(envelope["commit_ts"]).timestamp()
                if committed < since:
                    continue  # the initial snapshot, timed separately
                latencies.append(message.timestamp()[1] / 1000 - committed)
    finally:
        consumer.close()
    return latencies


def _topic_count(settings: LakesyncSettings, topic: str) -> int:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def _write_delta(spark: Any, table: TableMapping, scale: float) -> int:
    if Path(table.source, "_delta_log").is_dir():
        return spark.read.format("delta").load(table.source).count()
    frame = spark.read.parquet(str(tpch_parquet("orders", scale)))
    # Deletion vectors keep each incremental UPDATE cheap: the writer shares these 2 cores.
    (
        frame.write.format("delta")
        .option("delta.enableChangeDataFeed", "true")
        .option("delta.enableDeletionVectors", "true")
        .save(table.source)
    )
    return spark.read.format("delta").load(table.source).count()


def _mapping(home: Path, scale: float) -> TableMapping:
    name = f"orders_sf{str(scale).replace('.', '_')}"
    return TableMapping(name=name, source_path=str(home / "lake" / name), target_table=name, key_columns=[KEY])


def _settings(stack: EmbeddedStack, home: Path, tables: list[TableMapping]) -> LakesyncSettings:
    return load_settings(
        None,
        **stack.settings_overrides(),
        tables=tables,
        state_dir=home / "state",
        spark={"ui_enabled": False},
    )


def _wait_for_log(path: Path, marker: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and marker in path.read_text()):
        if time.monotonic() > deadline:
            raise SystemExit(f"no {marker} in {path} after {timeout_s} s")
        time.sleep(0.5)


def render(snapshots: list[dict[str, Any]], incremental: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        START,
        "## Streaming job publish (`python -m bench.stream_publish`)",
        "",
        f"{machine()}, fresh embedded Kafka + PostgreSQL, Spark `local[{os.cpu_count()}]`.",
        "TPC-H `orders` written to a Delta table (change data feed on); `lakesync stream` publishes it to Kafka.",
        "",
        "### Initial snapshot (`lakesync stream --once`, empty state)",
        "",
        "| scale | rows | published | batches | batch seconds | rows/s (batches) | wall seconds (incl. JVM start) | driver Python peak MiB | JVM peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in snapshots:
        lines.append(
            f"| {s['scale']:g} | {s['rows']:,} | {s['upserts']:,} | {s['batch_count']} | {s['batch_s']:.1f} | "
            f"{s['rows_per_s']:,.0f} | {s['wall_s']:.1f} | {s['python_peak_mib']:.0f} | {s['jvm_peak_mib']:.0f} |"
        )
    largest = snapshots[-1]
    lines += [
        "",
        (
            f"- Time split at SF {largest['scale']:g}: read feed (map, key, hash) {largest['read_s']:.1f} s, "
            f"classify + publish + state log {largest['publish_s']:.1f} s, snapshot compaction {largest['compact_s']:.1f} s."
        ),
    ]
    if len(snapshots) > 1:
        small = snapshots[0]
        lines.append(
            f"- Memory, SF {small['scale']:g} → SF {largest['scale']:g} ({largest['rows'] / small['rows']:.0f}× the rows): "
            f"driver Python {small['python_peak_mib']:.0f} → {largest['python_peak_mib']:.0f} MiB, "
            f"JVM {small['jvm_peak_mib']:.0f} → {largest['jvm_peak_mib']:.0f} MiB (heap capped by spark.driver_memory)."
        )
    i = incremental
    lines += [
        "",
        f"### Incremental (`lakesync stream`, trigger 0.5 s, SF {max(s['scale'] for s in snapshots):g} table)",
        "",
        (
            f"{i['commits']} commits of {i['changed']:,} updated rows, one every {args.interval:g} s, made by a second "
            f"Spark session on the same {os.cpu_count()} cores (after {args.warmup} untimed warm-up commits); "
            "latency = Kafka message timestamp − Delta commit timestamp, over every message."
        ),
        "",
        "| messages | batches | p50 s | p99 s | max s | median batch s (read / publish) |",
        "|---:|---:|---:|---:|---:|---:|",
        (
            f"| {i['messages']:,} | {i['batches']} | {_f(i['p50_s'])} | {_f(i['p99_s'])} | {_f(i['max_s'])} | "
            f"{_f(i['batch_median_s'])} ({_f(i['read_median_s'])} / {_f(i['publish_median_s'])}) |"
        ),
        END,
    ]
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main(sys.argv[1:])
