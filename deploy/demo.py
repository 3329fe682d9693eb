"""`lakesync demo`: the whole product on embedded services, start to finish, in a few minutes.

1. starts the embedded Kafka broker and PostgreSQL server, and Spark;
2. writes a sample registry ("cadastro") as a Delta table with the change data feed on;
3. runs the streaming job and the consumer service (threads of this process), which load it
   into PostgreSQL through the table mapping (renames, a cast, a broadcast lookup of the IBGE
   state codes), with a progress bar counting the rows PostgreSQL holds;
4. changes the registry (updates, deletes, inserts and an update that changes nothing) and
   waits until PostgreSQL has it;
5. reconciles the two sides and closes with a summary (exit 0 in sync, 4 drift).

What it prints is its own story: one progress bar per step and a closing summary. The services'
log lines (lakesync's, Spark's, librdkafka's) stay below WARNING unless something is wrong.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from batch.reconcile import reconcile
from batch.reconcile_report import print_summary
from connectors.consumer_position import wait_for_consumer
from connectors.spark import build_spark_session
from deploy.embedded_stack import EmbeddedStack
from lakesync.config import ColumnMapping, LakesyncSettings, LookupTable, TableMapping, load_settings
from lakesync.logs import register_secrets
from streaming.consumer.service import ConsumerService
from streaming.publisher import source
from streaming.publisher.job import StreamJob
from streaming.publisher.micro_batch import BatchReport
from streaming.publisher.progress import read_progress
from streaming.publisher.state_store import stream_target

UF_CSV = Path(__file__).resolve().parent / "sample_data" / "uf_ibge.csv"
UF_CODES = [11, 12, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26, 27, 28, 29, 31, 32, 33, 35, 41, 42, 43, 50, 51, 52, 53]
# The key is declared NOT NULL: Delta itself then refuses a row without one (preflight checks it).
SOURCE_DDL = "id BIGINT NOT NULL, nome STRING, cod_uf INT, renda STRING, nascimento DATE, atualizado_em TIMESTAMP"
SOURCE_SCHEMA = "id long, nome string, cod_uf int, renda string, nascimento date, atualizado_em timestamp"
WAIT_S = 300.0
# Each change of the registry is one Delta commit.
CHANGES = [
    (
        "50 raises",
        (
            "UPDATE {t} SET renda = cast(cast(renda AS decimal(12,2)) * 1.1 AS decimal(12,2)), "
            "atualizado_em = current_timestamp() WHERE id % 40 = 0"
        ),
    ),
    ("5 moves to São Paulo", "UPDATE {t} SET cod_uf = 35 WHERE id IN (1, 2, 3, 4, 5)"),
    ("10 deletions", "DELETE FROM {t} WHERE id % 200 = 7"),
    (
        "20 new people",
        (
            "INSERT INTO {t} SELECT id + 100000, concat('nova pessoa ', id), 26, '2500.00', "
            "date'1990-05-17', current_timestamp() FROM {t} WHERE id <= 20"
        ),
    ),
    ("100 updates that change nothing", "UPDATE {t} SET nome = nome WHERE id BETWEEN 500 AND 599"),
]


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


def demo_settings(stack: EmbeddedStack, home: Path) -> LakesyncSettings:
    return load_settings(
        None,
        **stack.settings_overrides(),
        tables=[demo_table(home)],
        state_dir=home / "state",
        spark={"ui_enabled": False},
        stream={"trigger_interval_s": 1.0},
        consumer={"group_id": "lakesync-demo", "batch_max_wait_s": 0.2},
    )


@dataclass
class _Timings:
    """How long each step took, and what it moved, for the closing summary."""

    steps: dict[str, float] = field(default_factory=dict)
    source_rows: int = 0
    target_rows: int = 0


def run_demo(home: Path, *, rows: int = 2000, keep_running: bool = False) -> int:
    console = Console()
    home = home.absolute()
    stack = EmbeddedStack.at(home / "embedded")
    story = _Story(console)
    reports: list[BatchReport] = []
    console.rule("lakesync demo")
    with story:
        with story.step("start embedded Kafka and PostgreSQL"):
            stack.up()
        settings = demo_settings(stack, home)
        register_secrets(settings.secret_values())
        table = settings.tables[0]
        with story.step("start Spark (local, in this process)"):
            spark = build_spark_session(settings.spark)
    try:
        with story:
            with story.step(f"write a registry of {rows:,} people to Delta"):
                _write_registry(spark, table, rows)
            story.timings.source_rows = spark.read.format("delta").load(table.source).count()
            with _Pipeline(spark, settings, reports) as pipeline:
                _initial_load(story, spark, settings, table, pipeline.check)
                _change_registry(story, spark, table)
                _sync_changes(story, spark, settings, table, pipeline.check)
        # Reconcile draws its own progress bar (Spark tasks) on a terminal: one live display at a time.
        result = reconcile(spark, settings, table, wait_s=None)
    finally:
        spark.stop()
        if not keep_running:
            stack.down()
    _summarize(console, story.timings, reports, table)
    print_summary(result, console)
    if keep_running:
        console.print(
            f"services still running; `export LAKESYNC_CONFIG={stack.config_file}`, stop with "
            f"`lakesync down --home {stack.home}`"
        )
    return 0 if result.counts.drift == 0 else 4


class _Story:
    """The demo's console: one progress bar per step, kept on screen when the step is done."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.timings = _Timings()
        self.progress = self._bars()

    def _bars(self) -> Progress:
        return Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description:<44}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )

    def __enter__(self) -> _Story:
        self.progress = self._bars()  # a fresh set: the bars of a finished block stay printed above
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A step without a count of its own: a bar of one, done when the block is."""
        task = self.progress.add_task(description, total=1)
        started = time.monotonic()
        yield
        self.progress.update(task, completed=1)
        self.timings.steps[description] = time.monotonic() - started

    @contextmanager
    def counted(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A step counting toward `total`: the block reports how far it got."""
        task = self.progress.add_task(description, total=total)
        started = time.monotonic()
        yield lambda done: self.progress.update(task, completed=min(done, total))
        self.progress.update(task, completed=total)
        self.timings.steps[description] = time.monotonic() - started


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


def _write_registry(spark: Any, table: TableMapping, rows: int) -> None:
    if Path(table.source, "_delta_log").is_dir():
        return  # a second run on the same --home continues with the registry it left
    spark.sql(
        f"CREATE TABLE delta.`{table.source}` ({SOURCE_DDL}) USING delta "
        "TBLPROPERTIES (delta.enableChangeDataFeed = true)"
    )
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
    spark.createDataFrame(people, SOURCE_SCHEMA).write.format("delta").mode("append").save(table.source)


def _initial_load(story: _Story, spark: Any, settings: LakesyncSettings, table: TableMapping, check: Any) -> None:
    """Stream and consume the registry's snapshot, counting the rows PostgreSQL holds."""
    latest = source.latest_version(spark, table)
    total = story.timings.source_rows
    with story.counted("initial load: rows in PostgreSQL", total) as report:
        _wait(lambda: _published(settings, table, latest), check, lambda: report(_target_rows(settings, table)))
        wait_for_consumer(settings, table, WAIT_S, on_wait=lambda _: report(_target_rows(settings, table)))
    story.timings.target_rows = _target_rows(settings, table)


def _change_registry(story: _Story, spark: Any, table: TableMapping) -> None:
    with story.counted("change the registry: Delta commits", len(CHANGES)) as report:
        for done, (_, statement) in enumerate(CHANGES, start=1):
            spark.sql(statement.format(t=f"delta.`{table.source}`"))
            report(done)


def _sync_changes(story: _Story, spark: Any, settings: LakesyncSettings, table: TableMapping, check: Any) -> None:
    """Wait until every change commit is published and applied, counting the commits done."""
    latest = source.latest_version(spark, table)
    first = latest - len(CHANGES) + 1
    with story.counted("sync the changes: commits applied", len(CHANGES)) as report:
        _wait(
            lambda: _published(settings, table, latest), check, lambda: report(_published_since(settings, table, first))
        )
        wait_for_consumer(settings, table, WAIT_S)


def _wait(done: Callable[[], bool], check: Callable[[], None], tick: Callable[[], None]) -> None:
    started = time.monotonic()
    while not done():
        check()
        tick()
        if time.monotonic() - started > WAIT_S:
            raise TimeoutError(f"the pipeline did not catch up within {WAIT_S:.0f} s")
        time.sleep(0.5)


def _published(settings: LakesyncSettings, table: TableMapping, version: int) -> bool:
    progress = read_progress(settings.postgres, stream_target(table))
    return progress is not None and progress.published_version is not None and progress.published_version >= version


def _published_since(settings: LakesyncSettings, table: TableMapping, first: int) -> int:
    progress = read_progress(settings.postgres, stream_target(table))
    if progress is None or progress.published_version is None:
        return 0
    return max(0, progress.published_version - first + 1)


def _target_rows(settings: LakesyncSettings, table: TableMapping) -> int:
    """Rows in the PostgreSQL target (0 until the consumer created it)."""
    target = sql.Identifier(table.target_schema, table.target_table)
    try:
        with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0


def _summarize(console: Console, timings: _Timings, reports: list[BatchReport], table: TableMapping) -> None:
    load_s = timings.steps.get("initial load: rows in PostgreSQL", 0.0)
    sync_s = timings.steps.get("sync the changes: commits applied", 0.0)
    summary = Table(title="summary", show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row(
        "initial load",
        f"{timings.target_rows:,} rows from {table.source} into PostgreSQL {table.target_schema}.{table.target_table} "
        f"in {load_s:.1f} s",
    )
    summary.add_row("changes", f"{len(CHANGES)} Delta commits: " + ", ".join(name for name, _ in CHANGES))
    summary.add_row("synced in", f"{sync_s:.1f} s after the last commit")
    summary.add_row(
        "stream",
        f"{len(reports)} micro-batch(es), {sum(r.rows_in for r in reports):,} change-feed rows → "
        f"{sum(r.upserts for r in reports):,} upserts and {sum(r.deletes for r in reports):,} deletes published",
    )
    summary.add_row(
        "never sent",
        f"{sum(r.noops for r in reports):,} unchanged rows and {sum(r.collapsed for r in reports):,} superseded "
        "rows never reached Kafka",
    )
    console.print(summary)
