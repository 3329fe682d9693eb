"""The `lakesync` command line: one entry point, one subcommand per way of running.

Exit codes: 0 success, 1 runtime error, 2 bad configuration or usage. Subcommands that report
findings (reconcile, lag) document their own extra codes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from lakesync.config import LakesyncSettings, load_settings
from lakesync.errors import ConfigError, LakesyncError
from lakesync.logs import LogFormat, configure_logging, get_logger

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_DRIFT = 4
EXIT_SCHEMA = 3  # consume: the target cannot take the envelopes without `lakesync rebuild`

app = typer.Typer(
    name="lakesync",
    help="Keep PostgreSQL tables exactly in step with Delta Lake tables, through Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: $LAKESYNC_CONFIG, else ./lakesync.toml)."),
]
HomeOption = Annotated[
    Path,
    typer.Option("--home", help="Directory holding the embedded servers' data, logs and config."),
]


class _Globals:
    config: Path | None = None
    log_format: LogFormat = "auto"
    log_level: str | None = None


@app.callback()
def _main(
    config: ConfigOption = None,
    log_format: Annotated[str, typer.Option(help="auto | json | console")] = "auto",
    log_level: Annotated[str | None, typer.Option(help="DEBUG | INFO | WARNING | ERROR")] = None,
) -> None:
    _Globals.config = config
    if log_format not in ("auto", "json", "console"):
        _fail(EXIT_CONFIG, f"--log-format: expected auto, json or console, got {log_format!r}")
    _Globals.log_format = log_format  # type: ignore[assignment]
    _Globals.log_level = log_level
    configure_logging(log_level or "INFO", _Globals.log_format)


def settings(**overrides: object) -> LakesyncSettings:
    """Load the configuration given by --config/$LAKESYNC_CONFIG and set up logging from it."""
    loaded = load_settings(_Globals.config, **overrides)
    configure_logging(_Globals.log_level or loaded.log_level, _resolve_format(loaded))
    return loaded


@app.command()
def up(
    home: HomeOption = Path(".lakesync/embedded"),
    with_s3: Annotated[
        bool, typer.Option("--with-s3", help="Also start an S3-compatible server (SeaweedFS) and its bucket.")
    ] = False,
) -> None:
    """Start the embedded Kafka broker (KRaft) and PostgreSQL server; print how to use them."""
    from deploy.embedded_stack import EmbeddedStack

    stack = EmbeddedStack.at(home)
    stack.up(with_s3=with_s3)
    get_logger("lakesync.up").info("embedded services ready", **stack.status())
    typer.echo(f"export LAKESYNC_CONFIG={stack.config_file}")


@app.command()
def down(home: HomeOption = Path(".lakesync/embedded")) -> None:
    """Stop the embedded servers started by `lakesync up` (their data is kept)."""
    from deploy.embedded_stack import EmbeddedStack

    stack = EmbeddedStack.at(home)
    stack.down()
    get_logger("lakesync.down").info("embedded services stopped", home=str(stack.home))


@app.command()
def status(home: HomeOption = Path(".lakesync/embedded")) -> None:
    """Show whether the embedded servers are running and where their config file is."""
    from deploy.embedded_stack import EmbeddedStack

    typer.echo(json.dumps(EmbeddedStack.at(home).status(), indent=2))


TableOption = Annotated[
    list[str] | None,
    typer.Option("--table", "-t", help="Only this table mapping (repeatable); default: all."),
]


def selected_tables(loaded: LakesyncSettings, names: list[str] | None) -> list:  # type: ignore[type-arg]
    """The table mappings named on the command line (all when none), or ConfigError."""
    if not names:
        if not loaded.tables:
            raise ConfigError("tables: no table mappings configured ([[tables]] in the config file)")
        return list(loaded.tables)
    return [loaded.table(name) for name in names]


@app.command()
def stream(
    table: TableOption = None,
    once: Annotated[bool, typer.Option("--once", help="Publish everything committed so far, then exit.")] = False,
) -> None:
    """Run the streaming job: Delta change data feed -> hash diff -> Kafka, until SIGTERM."""
    from streaming.publisher.job import StreamJob

    loaded = settings()
    job = StreamJob(loaded, selected_tables(loaded, table), once=once)
    job.install_signal_handlers()
    job.run()


@app.command("reconcile")
def reconcile_command(
    table: Annotated[str, typer.Option("--table", "-t", help="The table mapping to compare.")],
    version: Annotated[
        int | None, typer.Option(help="Delta version to compare at (default: what the stream completed, else latest).")
    ] = None,
    repair: Annotated[bool, typer.Option("--repair", help="Publish corrective events for every drifted key.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    sample: Annotated[int, typer.Option(help="Drifted keys to describe column by column.")] = 20,
    wait_s: Annotated[
        float, typer.Option(help="How long to wait for the consumer to apply what was published.")
    ] = 300.0,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Compare without waiting for the consumer.")] = False,
) -> None:
    """Compare a Delta table with its PostgreSQL copy at one version; exit 4 when they differ."""
    from rich.console import Console

    from batch.reconcile import reconcile
    from batch.reconcile_report import print_summary
    from connectors.spark import build_spark_session, object_storage

    loaded = settings()
    mapping = loaded.table(table)
    spark = build_spark_session(loaded.spark, s3=object_storage(loaded))
    result = reconcile(
        spark, loaded, mapping, version=version, wait_s=None if no_wait else wait_s, sample_size=sample, repair=repair
    )
    print_summary(result, Console())
    if report is not None:
        report.write_text(result.to_json())
    raise typer.Exit(EXIT_DRIFT if result.counts.drift else 0)


@app.command("rebuild")
def rebuild_command(
    table: Annotated[str, typer.Option("--table", "-t", help="The table mapping to reload.")],
    version: Annotated[int | None, typer.Option(help="Delta version to load (default: latest).")] = None,
) -> None:
    """Reload a target table from the source at one version (shadow table + atomic swap)."""
    from batch.rebuild import rebuild
    from connectors.spark import build_spark_session, object_storage

    loaded = settings()
    spark = build_spark_session(loaded.spark, s3=object_storage(loaded))
    result = rebuild(spark, loaded, loaded.table(table), version=version)
    typer.echo(
        f"rebuilt {result.target} from {result.table} at Delta version {result.version}: {result.rows:,} rows "
        f"({result.rows_per_s:,.0f} rows/s), {result.quarantined:,} quarantined, {result.duration_s:.1f} s in all; "
        f"the stream resumes after version {result.version}"
    )


@app.command()
def demo(
    home: Annotated[Path, typer.Option("--home", help="Where the demo keeps its servers, lake and state.")] = Path(
        ".lakesync/demo"
    ),
    rows: Annotated[int, typer.Option(help="People in the sample registry.")] = 2000,
    keep_running: Annotated[bool, typer.Option("--keep-running", help="Leave the embedded servers up.")] = False,
) -> None:
    """Run the whole pipeline on embedded Kafka + PostgreSQL with a sample Delta table."""
    from deploy.demo import run_demo

    configure_logging(_Globals.log_level or "WARNING", _Globals.log_format)
    raise typer.Exit(run_demo(home, rows=rows, keep_running=keep_running))


@app.command("check-config")
def check_config() -> None:
    """Validate the configuration and print it with secrets masked."""
    loaded = settings()
    typer.echo(loaded.model_dump_json(indent=2))


@app.command()
def consume(
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Consume only this table (repeatable; default: all configured).")
    ] = None,
) -> None:
    """Apply change events from Kafka to PostgreSQL (the consumer service; exit 3: schema needs a rebuild)."""
    from connectors.postgres_schema import SchemaMismatchError
    from streaming.consumer.service import ConsumerService

    try:
        ConsumerService(settings(), table or []).run()
    except SchemaMismatchError as exc:
        _fail(EXIT_SCHEMA, f"schema mismatch: {exc}")


@app.command()
def lag(
    table: TableOption = None,
    group: Annotated[str | None, typer.Option(help="Consumer group (default: consumer.group_id).")] = None,
    window: Annotated[float, typer.Option(min=0, help="Sample for this many seconds (0: one sample).")] = 10.0,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between samples.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON (the body of /lag).")] = False,
    serve: Annotated[
        int | None, typer.Option(help="Keep sampling and serve /metrics, /lag, /dashboard on this port (0: any).")
    ] = None,
) -> None:
    """Lag per partition, read from Kafka (no consumer needed). Exit 0 OK, 4 WARN, 5 STALL, 6 STOP, 7 ERR."""
    from observability import lag_report

    loaded = settings()
    tables = {t.topic_name: t.name for t in selected_tables(loaded, table)}
    group_id = group or loaded.consumer.group_id
    if serve is not None:
        lag_report.serve(loaded, group_id, tables, host=loaded.consumer.http_host, port=serve)
        return
    verdict = lag_report.measure(loaded, group_id, tables, window_s=window, interval_s=interval)
    if as_json:
        typer.echo(json.dumps(verdict.to_json(), indent=2))
    else:
        from rich.console import Console

        Console(width=max(Console().width, 140)).print(lag_report.render(verdict))
    raise typer.Exit(lag_report.exit_code(verdict.status))


dead_letters_app = typer.Typer(
    help="List the dead-letter topic's records; replay chosen ones to their source topic after a fix.",
    no_args_is_help=True,
)
app.add_typer(dead_letters_app, name="dead-letters")


@dead_letters_app.command("list")
def dead_letters_list(
    table: Annotated[str | None, typer.Option("--table", "-t", help="Only this table mapping's records.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per record.")] = False,
) -> None:
    """Every record on kafka.dead_letter_topic: id (partition:offset), table, error class, SQLSTATE, source offset."""
    from streaming.consumer import dead_letter_replay

    letters = dead_letter_replay.read_dead_letters(settings().kafka, table=table)
    if as_json:
        for letter in letters:
            typer.echo(json.dumps(letter.as_json()))
        return
    from rich.console import Console

    Console(width=max(Console().width, 160)).print(dead_letter_replay.render(letters))


@dead_letters_app.command("replay")
def dead_letters_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Records to replay, as listed: partition:offset.")] = None,
    table: Annotated[str | None, typer.Option("--table", "-t", help="With --all: only this table's records.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every replayable record (stage consume).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be replayed, produce nothing.")] = False,
) -> None:
    """Produce the chosen records again to their original topic (the consumer's version guard makes stale ones no-ops)."""
    from streaming.consumer import dead_letter_replay

    if bool(ids) == replay_all:
        _fail(EXIT_CONFIG, "dead-letters replay: name records (partition:offset) or pass --all, not both")
    kafka = settings().kafka
    letters = dead_letter_replay.read_dead_letters(kafka, table=table)
    chosen = [x for x in letters if x.replayable] if replay_all else dead_letter_replay.choose(letters, ids or [])
    for letter in chosen:
        typer.echo(f"{'would replay' if dry_run else 'replaying'} {letter.id} -> {letter.as_json()['topic']}")
    if not dry_run:
        typer.echo(f"replayed {dead_letter_replay.replay(kafka, chosen)} record(s)")


def _resolve_format(loaded: LakesyncSettings) -> LogFormat:
    return _Globals.log_format if _Globals.log_format != "auto" else loaded.log_format


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"lakesync: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point: turn lakesync's own errors into one line and an exit code."""
    try:
        result = app(standalone_mode=False)
    except ConfigError as exc:
        typer.echo(f"lakesync: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except LakesyncError as exc:
        typer.echo(f"lakesync: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors (typer's bundled click exceptions)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        sys.exit(getattr(exc, "exit_code", EXIT_CONFIG))
    # Without standalone mode click returns typer.Exit's code instead of exiting.
    sys.exit(result if isinstance(result, int) else 0)
