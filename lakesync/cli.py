"""The `lakesync` command line: one entry point, one subcommand per way of running.

Every failure ends in one line on stderr naming the thing and the fix, and an exit code (the
README's "Exit codes" table); the detail (traceback, Spark's plan) goes to the log at DEBUG.

  0  success                      10  Kafka or PostgreSQL unreachable (retry later)
  1  runtime error                11  credentials or rights refused
  2  bad configuration or usage   12  a Delta source or PostgreSQL target does not fit its mapping
  3  schema change: needs `lakesync rebuild`
  4-7  findings of reconcile (4 drift) and lag (4 WARN, 5 STALL, 6 STOP, 7 ERR)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, cast

import typer

from lakesync.config import LakesyncSettings, TableMapping, load_settings
from lakesync.errors import ConfigError, LakesyncError, NotReadyError, RebuildRequiredError
from lakesync.logs import LogFormat, configure_logging, get_logger, known_secrets, register_secrets
from lakesync.redaction import scrub

if TYPE_CHECKING:
    from lakesync.preflight import Finding

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_DRIFT = 4
EXIT_SCHEMA = RebuildRequiredError.exit_code  # the target or the stream cannot go on without `lakesync rebuild`
EXIT_INTERRUPTED = 130

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
    _Globals.log_format = cast(LogFormat, log_format)  # checked just above
    _Globals.log_level = log_level
    configure_logging(log_level or "INFO", _Globals.log_format)


def settings(**overrides: object) -> LakesyncSettings:
    """Load the configuration given by --config/$LAKESYNC_CONFIG and set up logging from it."""
    loaded = load_settings(_Globals.config, **overrides)
    register_secrets(loaded.secret_values())
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


def selected_tables(loaded: LakesyncSettings, names: list[str] | None) -> list[TableMapping]:
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
    from lakesync import preflight

    loaded = settings()
    mapping = loaded.table(table)
    # Kafka matters only to wait for the consumer or to publish repairs.
    needs = preflight.Needs(kafka=repair or not no_wait, sources=True, target="read")
    preflight.require_ready(loaded, [mapping], needs)
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
    from lakesync import preflight

    loaded = settings()
    mapping = loaded.table(table)
    preflight.require_ready(loaded, [mapping], preflight.REBUILD)
    spark = build_spark_session(loaded.spark, s3=object_storage(loaded))
    result = rebuild(spark, loaded, mapping, version=version)
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
def check_config(
    connect: Annotated[
        bool,
        typer.Option(
            "--connect",
            help="Also check the world: Kafka, PostgreSQL and its rights, each Delta table and its mapping.",
        ),
    ] = False,
    table: TableOption = None,
) -> None:
    """Validate the configuration and print it with secrets masked; --connect checks the world too."""
    loaded = settings()
    if not connect:
        typer.echo(loaded.redacted_json())
        return
    from lakesync import preflight

    found = preflight.run_checks(loaded, selected_tables(loaded, table), preflight.CHECK_ALL)
    _print_findings(found)
    failures = [f for f in found if f.status == "fail"]
    raise typer.Exit(failures[0].error.exit_code if failures and failures[0].error else 0)


@app.command()
def consume(
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Consume only this table (repeatable; default: all configured).")
    ] = None,
) -> None:
    """Apply change events from Kafka to PostgreSQL (the consumer service; exit 3: schema needs a rebuild)."""
    from connectors.errors import SchemaMismatchError
    from lakesync import preflight
    from streaming.consumer.service import ConsumerService

    loaded = settings()
    service = ConsumerService(loaded, table or [])
    # Before any topic or table is created: a broken world stops here, in one line.
    preflight.require_ready(loaded, [loaded.table(t.name) for t in service.targets.values()], preflight.CONSUME)
    try:
        service.run()
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
    from lakesync import preflight
    from observability import lag_report

    loaded = settings()
    tables = {t.topic_name: t.name for t in selected_tables(loaded, table)}
    group_id = group or loaded.consumer.group_id
    preflight.require_ready(loaded, [], preflight.LAG)
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


_STATUS_MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "skip": "[dim]skip[/]", "fail": "[red]FAIL[/]"}


def _print_findings(found: list[Finding]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(width=max(Console().width, 160), soft_wrap=True)
    for finding in found:
        console.print(f"{_STATUS_MARK[finding.status]} {escape(scrub(finding.line, known_secrets()))}")
    counts = {status: sum(1 for f in found if f.status == status) for status in _STATUS_MARK}
    console.print(
        f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['skip']} skipped, {counts['fail']} failure(s)"
    )


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"lakesync: {scrub(message, known_secrets())}", err=True)
    raise typer.Exit(code)


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error (README, "Exit codes"): its class says it."""
    if _spark_analysis_sqlstate(exc).startswith(_SQLSTATE_ANALYSIS):
        return NotReadyError.exit_code
    return exc.exit_code if isinstance(exc, LakesyncError) else EXIT_ERROR


# SQLSTATE class 42, "syntax error or access rule violation": Spark could not resolve what the
# table mapping asks of the source (an unknown column in an expression, a type mismatch).
_SQLSTATE_ANALYSIS = "42"


def _spark_analysis_sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a pyspark analysis error, or "" for anything else."""
    if "pyspark" not in sys.modules:
        return ""
    from pyspark.errors import AnalysisException

    return (exc.getSqlState() or "") if isinstance(exc, AnalysisException) else ""


def one_line(exc: BaseException) -> str:
    """What an operator reads: lakesync's own message, or the cause of anything unforeseen."""
    if isinstance(exc, ConfigError):
        text = str(exc)
    elif isinstance(exc, LakesyncError):
        text = f"error: {exc}"
    elif _spark_analysis_sqlstate(exc).startswith(_SQLSTATE_ANALYSIS):
        first = str(exc).strip().splitlines()[0]
        text = f"error: the table mapping does not fit its source: {first} (check [[tables.columns]] and [[tables.lookups]])"
    else:
        text = f"error: {_describe_unforeseen(exc)} (the traceback is in the log with --log-level DEBUG)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    # Spark's messages can carry query plans with control characters (a NUL makes grep see binary).
    printable = "".join(ch if ch.isprintable() else " " for ch in first)
    return scrub(printable, known_secrets())


def _describe_unforeseen(exc: BaseException) -> str:
    """`Type: first line`, with Spark's error condition or the JVM exception when there is one."""
    java = getattr(exc, "java_exception", None)
    if java is not None:  # py4j: "An error occurred while calling o42.load" says nothing; the cause does
        try:
            return str(java.toString())
        except Exception:  # noqa: BLE001 - the JVM may be gone already
            pass
    condition = getattr(exc, "getCondition", None)
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if callable(condition):
        try:
            name = condition()
        except Exception:  # noqa: BLE001 - as above
            name = None
        if name and f"[{name}]" in first:
            return f"Spark {first}"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _report(exc: BaseException) -> int:
    """Log the whole error at DEBUG, print its one line, return its exit code."""
    get_logger("lakesync").debug("command failed", exc_info=exc)
    typer.echo(f"lakesync: {one_line(exc)}", err=True)
    return exit_code(exc)


def main() -> None:
    """Console-script entry point: every failure becomes one line on stderr and a documented exit code."""
    try:
        result = app(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(EXIT_INTERRUPTED)
    except typer.TyperException as exc:  # usage errors (typer's bundled click exceptions)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        sys.exit(getattr(exc, "exit_code", EXIT_CONFIG))
    except Exception as exc:  # noqa: BLE001 - the one place where any error becomes one line
        sys.exit(_report(exc))
    # Without standalone mode click returns typer.Exit's code instead of exiting.
    sys.exit(result if isinstance(result, int) else 0)
