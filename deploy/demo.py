"""`lakesync demo`: the whole product on embedded services, start to finish, in a few minutes.

1. starts the embedded Kafka broker and PostgreSQL server;
2. writes a sample registry ("cadastro") as a Delta table with the change data feed on;
3. runs the streaming job and the consumer service (threads of this process), which load it
   into PostgreSQL through the table mapping (renames, a cast, a broadcast lookup of the IBGE
   state codes);
4. changes the registry (updates, deletes, inserts and an update that changes nothing) and
   waits until PostgreSQL has it;
5. reconciles the two sides and prints the verdict (exit 0 in sync, 4 drift).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from batch.consumer_position import wait_for_consumer
from batch.reconcile import reconcile
from batch.reconcile_report import print_summary
from connectors.spark import build_spark_session
from deploy.embedded_stack import EmbeddedStack
from lakesync.config import ColumnMapping, LakesyncSettings, LookupTable, TableMapping, load_settings
from streaming.consumer.service import ConsumerService
from streaming.publisher import source
from streaming.publisher.job import StreamJob
from streaming.publisher.micro_batch import BatchReport
from streaming.publisher.progress import read_progress
from streaming.publisher.state_store import stream_target

UF_CSV = Path(__file__).resolve().parent / "sample_data" / "uf_ibge.csv"
UF_CODES = [11, 12, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26, 27, 28, 29, 31, 32, 33, 35, 41, 42, 43, 50, 51, 52, 53]
SOURCE_SCHEMA = "id long, nome string, cod_uf int, renda string, nascimento date, atualizado_em timestamp"
WAIT_S = 300.0


def demo_table(home: Path) -> TableMapping:
    return TableMapping(
        name="cadastro",
        source_path=str(home / "lake" / "cadastro"),
        target_table="cadastro",
        key_columns=["person_id"],
        columns=[
            ColumnMapping(name="person_id", source="id"),
            ColumnMapping(name="full_name", expr="initcap(nome)"),
            ColumnMapping(name="state_code", expr="uf.uf"),
            ColumnMapping(name="state", expr="uf.name"),
            ColumnMapping(name="region", expr="uf.region"),
            ColumnMapping(name="income", source="renda", cast="decimal(12,2)"),
            ColumnMapping(name="birth_date", source="nascimento"),
            ColumnMapping(name="updated_at", source="atualizado_em"),
        ],
        lookups=[LookupTable(name="uf", path=str(UF_CSV), on={"cod_uf": "code"})],
    )


def run_demo(home: Path, *, rows: int = 2000, keep_running: bool = False) -> int:
    console = Console()
    home = home.absolute()
    stack = EmbeddedStack.at(home / "embedded")
    console.rule("lakesync demo")
    console.print("starting embedded Kafka (KRaft) and PostgreSQL ...")
    stack.up()
    settings = load_settings(
        None,
        **stack.settings_overrides(),
        tables=[demo_table(home)],
        state_dir=home / "state",
        spark={"ui_enabled": False},
        stream={"trigger_interval_s": 1.0},
        consumer={"group_id": "lakesync-demo", "batch_max_wait_s": 0.2},
    )
    table = settings.tables[0]
    spark = build_spark_session(settings.spark)
    reports: list[BatchReport] = []
    try:
        _write_registry(spark, table, rows, console)
        with _Pipeline(spark, settings, reports) as pipeline:
            _wait_synced(spark, settings, table, console, "initial load", pipeline.check)
            _change_registry(spark, table, console)
            _wait_synced(spark, settings, table, console, "changes", pipeline.check)
        result = reconcile(spark, settings, table, wait_s=None)
    finally:
        spark.stop()
        if not keep_running:
            stack.down()
    _summarize(console, reports)
    print_summary(result, console)
    if keep_running:
        console.print(
            f"services still running; `export LAKESYNC_CONFIG={stack.config_file}`, stop with "
            f"`lakesync down --home {stack.home}`"
        )
    return 0 if result.counts.drift == 0 else 4


class _Pipeline:
    """The stream job and the consumer in threads of this process, stopped on exit."""

    def __init__(self, spark: Any, settings: LakesyncSettings, reports: list[BatchReport]) -> None:
        self.job = StreamJob(settings, settings.tables, on_report=[reports.append])
        self.consumer = ConsumerService(settings)
        self.failures: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._guard(lambda: self.job.run(spark)), daemon=True),
            threading.Thread(target=self._guard(lambda: self.consumer.run(handle_signals=False)), daemon=True),
        ]

    def _guard(self, work: Any) -> Any:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 (re-raised in the main thread by check())
                self.failures.append(exc)

        return run

    def check(self) -> None:
        """Raise what a pipeline thread died of, if one did."""
        if self.failures:
            raise self.failures[0]

    def __enter__(self) -> _Pipeline:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.job.request_stop()
        self.consumer.stop()
        for thread in self.threads:
            thread.join(120)


def _write_registry(spark: Any, table: TableMapping, rows: int, console: Console) -> None:
    if Path(table.source, "_delta_log").is_dir():
        console.print(f"sample registry already at {table.source}")
        return
    console.print(f"writing a sample registry of {rows:,} people to the Delta table {table.source}")
    people = [
        (
            i,
            f"pessoa {i:05d} da silva",
            UF_CODES[i % len(UF_CODES)],
            f"{1000 + (i * 37) % 9000}.{i % 100:02d}",
            dt.date(1950, 1, 1) + dt.timedelta(days=(i * 97) % 20000),
            dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
        for i in range(1, rows + 1)
    ]
    spark.createDataFrame(people, SOURCE_SCHEMA).write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(table.source)


def _change_registry(spark: Any, table: TableMapping, console: Console) -> None:
    t = f"delta.`{table.source}`"
    console.print(
        "changing the registry: 50 raises, 5 moves to São Paulo, 10 deletions, 20 new people, "
        "and 100 updates that change nothing"
    )
    spark.sql(
        f"UPDATE {t} SET renda = cast(cast(renda AS decimal(12,2)) * 1.1 AS decimal(12,2)), "
        "atualizado_em = current_timestamp() WHERE id % 40 = 0"
    )
    spark.sql(f"UPDATE {t} SET cod_uf = 35 WHERE id IN (1, 2, 3, 4, 5)")
    spark.sql(f"DELETE FROM {t} WHERE id % 200 = 7")
    spark.sql(
        f"INSERT INTO {t} SELECT id + 100000, concat('nova pessoa ', id), 26, '2500.00', "
        f"date'1990-05-17', current_timestamp() FROM {t} WHERE id <= 20"
    )
    spark.sql(f"UPDATE {t} SET nome = nome WHERE id BETWEEN 500 AND 599")


def _wait_synced(
    spark: Any, settings: LakesyncSettings, table: TableMapping, console: Console, what: str, check: Any
) -> None:
    """Until the stream published the table's latest version and the consumer applied it."""
    started = time.monotonic()
    latest = source.latest_version(spark, table)
    with console.status(f"{what}: streaming Delta version {latest} ..."):
        while not _published(settings, table, latest):
            check()
            if time.monotonic() - started > WAIT_S:
                raise TimeoutError(f"the stream did not publish version {latest} within {WAIT_S:.0f} s")
            time.sleep(0.5)
        wait_for_consumer(settings, table, WAIT_S)
    console.print(f"{what}: PostgreSQL has Delta version {latest} ({time.monotonic() - started:.1f} s)")


def _published(settings: LakesyncSettings, table: TableMapping, version: int) -> bool:
    progress = read_progress(settings.postgres, stream_target(table))
    return progress is not None and progress.published_version is not None and progress.published_version >= version


def _summarize(console: Console, reports: list[BatchReport]) -> None:
    rows_in = sum(r.rows_in for r in reports)
    console.print(
        f"stream: {len(reports)} batch(es), {rows_in:,} change-feed rows → {sum(r.upserts for r in reports):,} upserts, "
        f"{sum(r.deletes for r in reports):,} deletes published; {sum(r.noops for r in reports):,} unchanged rows "
        f"and {sum(r.collapsed for r in reports):,} superseded rows never reached Kafka"
    )
