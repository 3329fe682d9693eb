"""Reconcile and rebuild on TPC-H `lineitem` (composite key), next to a raw COPY of the same rows.

    .venv/bin/python -m bench.reconcile_rebuild [--scales 1,10] [--drift 0.001]

Starts fresh embedded Kafka + PostgreSQL, then for each scale:

1. writes `lineitem` to a Delta table (not timed);
2. `lakesync rebuild` (a subprocess): the table into PostgreSQL — rows/s and peak memory;
3. the reference: the same rows as CSV, `COPY` into an equal table then `ADD PRIMARY KEY` (the
   rebuild's database work done by hand), and the plain COPY alone;
4. injects drift into PostgreSQL (a `--drift` fraction of the rows: half changed, a quarter
   deleted, a quarter extra rows);
5. `lakesync reconcile --no-wait` (a subprocess): wall time, peak memory of the driver process
   and of its JVM, and whether it found exactly the injected drift.

For each command also the CPU seconds of its JVM and of PostgreSQL (the profile: on 2 cores, where
the time went). The figures replace the reconcile-rebuild section of BENCHMARKS.md and go to
bench/results/reconcile_rebuild.json; the targets (reconcile of 60 M rows < 8 min, flat driver
memory, rebuild load >= 0.6x raw COPY + primary key) are marked met or MISSED.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from bench.consumer_apply import PostgresCpu, process_cpu_s
from bench.report import children, fresh_stack, machine, peak_rss_kib, rss_kib, write_results, write_section
from bench.tpch import tpch_parquet
from connectors.spark import build_spark_session
from deploy.embedded_stack import EmbeddedStack
from lakesync.config import LakesyncSettings, TableMapping, load_settings

START, END = "<!-- reconcile-rebuild:start -->", "<!-- reconcile-rebuild:end -->"
KEYS = ["l_orderkey", "l_linenumber"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10", help="TPC-H scale factors, comma separated")
    parser.add_argument("--drift", type=float, default=0.001, help="fraction of rows to drift in PostgreSQL")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    with fresh_stack("lakesync-bench-batch-") as (stack, home):
        figures = [measure(stack, home, float(scale), args.drift) for scale in args.scales.split(",")]
    write_results("reconcile_rebuild", {"drift": args.drift, "scales": figures})
    section = render(figures, args)
    print(section)
    if not args.no_write:
        write_section(START, END, section)


def measure(stack: EmbeddedStack, home: Path, scale: float, drift: float) -> dict[str, Any]:
    name = f"lineitem_sf{str(scale).replace('.', '_')}"
    table = TableMapping(name=name, source_path=str(home / "lake" / name), target_table=name, key_columns=KEYS)
    settings = _settings(stack, home, [table])
    parquet = tpch_parquet("lineitem", scale)
    rows = _write_delta(settings, table, parquet)
    rebuild = _run_cli(stack, settings, home, ["rebuild", "--table", name])
    copy = _raw_copy(settings, parquet, f"{name}_copy")
    injected = _inject_drift(settings, table, rows, drift)
    reconcile = _run_cli(
        stack,
        settings,
        home,
        ["reconcile", "--table", name, "--no-wait", "--report", str(home / f"{name}.json")],
        ok=(0, 4),
    )
    report = json.loads((home / f"{name}.json").read_text())
    return {
        "scale": scale,
        "rows": rows,
        "rebuild": rebuild,
        "copy": copy,
        "injected": injected,
        "reconcile": reconcile,
        "report": report,
    }


def _write_delta(settings: LakesyncSettings, table: TableMapping, parquet: Path) -> int:
    spark = build_spark_session(settings.spark)
    frame = spark.read.parquet(str(parquet))
    frame.write.format("delta").option("delta.enableChangeDataFeed", "true").save(table.source)
    rows = spark.read.format("delta").load(table.source).count()
    spark.stop()
    return rows


def _run_cli(
    stack: EmbeddedStack, settings: LakesyncSettings, home: Path, args: list[str], ok: tuple[int, ...] = (0,)
) -> dict[str, Any]:
    """A lakesync command in a subprocess: wall seconds and peak memory of it and its JVM."""
    env = {
        **os.environ,
        "LAKESYNC_TABLES": "[" + ",".join(t.model_dump_json() for t in settings.tables) + "]",
        "LAKESYNC_STATE_DIR": str(settings.state_dir),
        "LAKESYNC_SPARK": json.dumps({"ui_enabled": False}),
    }
    log = home / f"{args[0]}-{settings.tables[0].name}.log"
    postgres = PostgresCpu(stack.postgres.pid)
    pg_cpu0 = postgres.now()
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lakesync", "--config", str(stack.config_file), "--log-format", "json", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    python_peak = jvm_peak = 0
    jvm_cpu: dict[int, float] = {}
    memory: list[tuple[float, int]] = []  # (seconds, JVM RSS KiB): flat or growing with the rows?
    while process.poll() is None:
        python_peak = max(python_peak, peak_rss_kib(process.pid))
        jvms = children(process.pid)
        jvm_rss = sum(rss_kib(c) for c in jvms)
        jvm_peak = max(jvm_peak, jvm_rss)
        memory.append((time.monotonic() - started, jvm_rss))
        jvm_cpu.update({c: process_cpu_s(c) or jvm_cpu.get(c, 0.0) for c in jvms})
        time.sleep(0.2)
    if process.returncode not in ok:
        raise SystemExit(f"lakesync {args[0]} failed ({process.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    text = log.read_text()
    rebuilt = [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"rebuilt"' in line]
    return {
        "wall_s": time.monotonic() - started,
        "python_peak_mib": python_peak / 1024,
        "jvm_peak_mib": jvm_peak / 1024,
        "jvm_rss_mib_by_quarter": _quarters(memory),
        "jvm_cpu_s": sum(jvm_cpu.values()),
        "postgres_cpu_s": postgres.now() - pg_cpu0,
        "exit": process.returncode,
        "log": rebuilt[-1] if rebuilt else None,
    }


def _quarters(memory: list[tuple[float, int]]) -> list[int]:
    """The JVM's peak RSS in each quarter of the run (MiB): flat memory stays level across them."""
    if not memory:
        return []
    end = memory[-1][0] or 1.0
    return [
        round(max((kib for t, kib in memory if q * end / 4 <= t <= (q + 1) * end / 4), default=0) / 1024)
        for q in range(4)
    ]


def _raw_copy(settings: LakesyncSettings, parquet: Path, table: str) -> dict[str, float]:
    """COPY the same rows from CSV into an equal table, then key it: the hand-made reference."""
    arrow = _plain_strings(pq.read_table(parquet))
    csv_path = parquet.with_suffix(".copy.csv")
    if not csv_path.exists():
        partial = csv_path.with_suffix(".partial")  # renamed when whole: a failed run leaves no stub
        pacsv.write_csv(arrow, partial, pacsv.WriteOptions(include_header=False))
        partial.rename(csv_path)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_pg_type(f.type))) for f in arrow.schema
    )
    target = sql.Identifier(table)
    with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, columns))
        started = time.monotonic()
        with (
            conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(target)) as copy,
            csv_path.open("rb") as source,
        ):
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        copied = time.monotonic()
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                target, sql.SQL(", ").join(sql.Identifier(k) for k in KEYS)
            )
        )
        keyed = time.monotonic()
        loaded = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()[0]  # type: ignore[index]  # count(*) returns its one row
        if loaded != arrow.num_rows:
            raise SystemExit(f"raw COPY loaded {loaded} rows of {arrow.num_rows} from {csv_path}")
        conn.execute(sql.SQL("DROP TABLE {}").format(target))
    return {"rows": arrow.num_rows, "copy_s": copied - started, "copy_and_key_s": keyed - started}


def _inject_drift(settings: LakesyncSettings, table: TableMapping, rows: int, fraction: float) -> dict[str, int]:
    """Change, delete and add rows in PostgreSQL behind lakesync's back."""
    count = max(4, int(rows * fraction))
    target = sql.Identifier(table.target_schema, table.target_table)
    with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as conn:
        every = max(1, rows // count)
        changed = conn.execute(
            sql.SQL(
                "UPDATE {} SET l_comment = l_comment || ' drift' WHERE (l_orderkey * 7 + l_linenumber) % {} = 0 "
                "AND l_orderkey % 2 = 0"
            ).format(target, sql.Literal(every))
        ).rowcount
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} WHERE (l_orderkey * 7 + l_linenumber) % {} = 0 AND l_orderkey % 4 = 1").format(
                target, sql.Literal(every)
            )
        ).rowcount
        extra = conn.execute(
            sql.SQL(
                "INSERT INTO {t} SELECT l_orderkey, l_partkey, l_suppkey, l_linenumber + 100, l_quantity, "
                "l_extendedprice, l_discount, l_tax, l_returnflag, l_linestatus, l_shipdate, l_commitdate, "
                "l_receiptdate, l_shipinstruct, l_shipmode, l_comment, _lakesync_version, _lakesync_commit_ts "
                "FROM {t} WHERE (l_orderkey * 7 + l_linenumber) % {n} = 0 AND l_orderkey % 4 = 3"
            ).format(t=target, n=sql.Literal(every))
        ).rowcount
    return {"different": changed, "missing_in_target": deleted, "extra_in_target": extra}


def _plain_strings(arrow: pa.Table) -> pa.Table:
    """tpchgen writes string_view columns, which Arrow's CSV writer does not take: cast to string."""
    fields = [pa.field(f.name, pa.string()) if pa.types.is_string_view(f.type) else f for f in arrow.schema]
    return arrow.cast(pa.schema(fields))


def _pg_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision},{arrow_type.scale})"
    return {pa.int64(): "bigint", pa.int32(): "integer", pa.string(): "text", pa.date32(): "date"}.get(
        arrow_type, "text"
    )


def _settings(stack: EmbeddedStack, home: Path, tables: list[TableMapping]) -> LakesyncSettings:
    return load_settings(
        None, **stack.settings_overrides(), tables=tables, state_dir=home / "state", spark={"ui_enabled": False}
    )


def render(figures: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        START,
        "## Reconcile and rebuild (`python -m bench.reconcile_rebuild`)",
        "",
        (
            f"{machine()}, fresh embedded Kafka + PostgreSQL, Spark `local[{os.cpu_count()}]` in a subprocess per "
            "command (driver memory 2g)."
        ),
        f"TPC-H `lineitem` (key `l_orderkey, l_linenumber`); {args.drift:.1%} of the rows drifted in PostgreSQL.",
        "CPU s: the command's JVM and PostgreSQL (server and backends) over the command; 2 cores = 2 CPU s per second.",
        "",
        "### Reconcile (`lakesync reconcile --no-wait`)",
        "",
        "| scale | rows | wall s | rows/s (both sides) | found = injected | driver Python peak MiB | JVM peak MiB | JVM RSS by quarter MiB | JVM CPU s | PostgreSQL CPU s |",
        "|---:|---:|---:|---:|:---:|---:|---:|---|---:|---:|",
    ]
    for f in figures:
        r, counts = f["reconcile"], f["report"]["counts"]
        found = all(counts[k] == v for k, v in f["injected"].items())
        lines.append(
            f"| {f['scale']:g} | {f['rows']:,} | {r['wall_s']:.1f} | {2 * f['rows'] / r['wall_s']:,.0f} | "
            f"{'yes' if found else 'NO'} ({sum(f['injected'].values()):,}) | {r['python_peak_mib']:.0f} | "
            f"{r['jvm_peak_mib']:.0f} | {_quarters_text(r)} | {r['jvm_cpu_s']:.0f} | {r['postgres_cpu_s']:.0f} |"
        )
    lines += [
        "",
        "### Rebuild (`lakesync rebuild`) next to a raw COPY of the same rows",
        "",
        "| scale | rows | rebuild load rows/s | rebuild wall s | raw COPY rows/s | raw COPY + primary key rows/s | load / (COPY + key) | wall / (COPY + key) | JVM peak MiB | JVM CPU s | PostgreSQL CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        rebuild, copy = f["rebuild"], f["copy"]
        load_rate = (rebuild["log"] or {}).get("rows_per_s", 0)
        copy_rate, keyed_rate = copy["rows"] / copy["copy_s"], copy["rows"] / copy["copy_and_key_s"]
        wall_rate = f["rows"] / rebuild["wall_s"]
        lines.append(
            f"| {f['scale']:g} | {f['rows']:,} | {load_rate:,.0f} | {rebuild['wall_s']:.1f} | {copy_rate:,.0f} | "
            f"{keyed_rate:,.0f} | {load_rate / keyed_rate:.2f}× | {wall_rate / keyed_rate:.2f}× | "
            f"{rebuild['jvm_peak_mib']:.0f} | {rebuild['jvm_cpu_s']:.0f} | {rebuild['postgres_cpu_s']:.0f} |"
        )
    lines += [
        "",
        (
            "- rebuild load rows/s: the parallel COPY into the shadow table (Spark reads Delta and renders CSV, "
            "`postgres.max_spark_connections` connections); wall time adds JVM start, the quarantine check, the "
            "key, ANALYZE, the stream state's shadow load and the swap."
        ),
        "",
        "### Targets",
        "",
        *_verdicts(figures),
        END,
    ]
    return "\n".join(lines)


def _quarters_text(run: dict[str, Any]) -> str:
    return " / ".join(str(q) for q in run.get("jvm_rss_mib_by_quarter", []))


def _verdicts(figures: list[dict[str, Any]]) -> list[str]:
    """One line per target, met or MISSED, with the figure that decides it."""
    lines = []
    largest = max(figures, key=lambda f: f["rows"])
    minutes = largest["reconcile"]["wall_s"] / 60
    if largest["rows"] >= 50_000_000:
        verdict = "met" if minutes < 8 else "**MISSED**"
        lines.append(f"- Reconcile of {largest['rows']:,} rows < 8 min: {verdict} ({minutes:.1f} min).")
    smallest = min(figures, key=lambda f: f["rows"])
    if largest is not smallest:
        grow = {k: largest[k]["jvm_peak_mib"] / smallest[k]["jvm_peak_mib"] for k in ("reconcile", "rebuild")}
        python = largest["reconcile"]["python_peak_mib"] / smallest["reconcile"]["python_peak_mib"]
        flat = all(g < 1.25 for g in grow.values()) and python < 1.25
        lines.append(
            f"- Flat driver memory ({largest['rows'] / smallest['rows']:.0f}× the rows): {'met' if flat else '**MISSED**'} "
            f"(JVM peak × {grow['reconcile']:.2f} reconcile, × {grow['rebuild']:.2f} rebuild; driver Python × {python:.2f})."
        )
    for f in figures:
        copy = f["copy"]
        keyed_rate = copy["rows"] / copy["copy_and_key_s"]
        ratio = (f["rebuild"]["log"] or {}).get("rows_per_s", 0) / keyed_rate
        verdict = "met" if ratio >= 0.6 else "**MISSED**"
        lines.append(f"- Rebuild load ≥ 0.6× raw COPY + primary key at SF{f['scale']:g}: {verdict} ({ratio:.2f}×).")
    return lines


if __name__ == "__main__":
    main(sys.argv[1:])
