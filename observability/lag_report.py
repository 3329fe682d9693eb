"""`lakesync lag`: sample a group's lag from Kafka over a short window, show it, exit by status.

Exit codes (also in the README): 0 every partition OK; 4 WARN; 5 STALL; 6 STOP; 7 ERR — the
group's status, i.e. its worst partition's. 1 is a runtime error (Kafka unreachable), 2 bad
configuration, as for every command.

`serve` keeps sampling instead and serves `/metrics`, `/lag`, `/lag/history` and `/dashboard`:
an exporter that reads the brokers, so the lag stays visible with no consumer running.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Mapping
from types import FrameType

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text

from lakesync.config import LakesyncSettings
from lakesync.logs import get_logger
from observability.endpoints import HealthServer, Probes
from observability.kafka_offsets import OffsetReader
from observability.lag import GroupLag, LagWindow, Status
from observability.lag_monitor import LagMonitor

log = get_logger("lakesync.lag")

EXIT_BY_STATUS = {Status.OK: 0, Status.WARN: 4, Status.STALL: 5, Status.STOP: 6, Status.ERR: 7}
_STYLE = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.STALL: "dark_orange",
    Status.STOP: "red",
    Status.ERR: "magenta",
}


def measure(
    settings: LakesyncSettings, group: str, tables: Mapping[str, str], *, window_s: float, interval_s: float
) -> GroupLag:
    """Sample every `interval_s` for `window_s` seconds (one sample when 0) and judge the window."""
    window = LagWindow(window_s=window_s, history_s=window_s, tables=tables)
    reader = OffsetReader(settings.kafka)
    try:
        started = time.monotonic()
        while True:
            window.add(reader.sample(group, sorted(tables), dead_letter_topic=settings.kafka.dead_letter_topic))
            remaining = window_s - (time.monotonic() - started)
            if remaining <= 0:
                break
            time.sleep(min(interval_s, remaining))
    finally:
        reader.close()
    verdict = window.evaluate()
    assert verdict is not None
    return verdict


def exit_code(status: Status) -> int:
    return EXIT_BY_STATUS[status]


def render(lag: GroupLag) -> Table:
    """One row per partition: group, table, topic, partition, offset lag, time lag, status, why."""
    title = (
        f"group {lag.group}: {lag.status.name} ({lag.reason}); {lag.members} member(s), "
        f"{lag.samples} sample(s) over {lag.window_s:g} s"
    )
    if lag.dead_letter_records is not None:
        title += f"; dead-letter records: {lag.dead_letter_records}"
    table = Table(title=title, title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("group", "left"),
        ("table", "left"),
        ("topic", "left"),
        ("partition", "right"),
        ("offset lag", "right"),
        ("time lag", "right"),
        ("status", "left"),
        ("why", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for p in lag.partitions:
        table.add_row(
            lag.group,
            p.table or "",
            p.topic,
            str(p.partition),
            f"{p.offset_lag:,}",
            format_seconds(p.time_lag_s),
            Text(p.status.name, style=_STYLE[p.status]),
            p.reason,
        )
    return table


def format_seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def serve(settings: LakesyncSettings, group: str, tables: Mapping[str, str], *, host: str, port: int) -> None:
    """Sample forever (every `lag.sample_interval_s`) and serve the endpoints until SIGTERM/SIGINT."""
    monitor = LagMonitor(
        OffsetReader(settings.kafka), group, tables, settings.lag, dead_letter_topic=settings.kafka.dead_letter_topic
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received, stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fresh_within_s = 3 * settings.lag.sample_interval_s + 10
    probes = Probes(
        alive=lambda: not stop.is_set(),
        readiness={"lag_sampled": lambda: _sampled_within(monitor, fresh_within_s)},
    )
    server = HealthServer(host, port, probes, routes=monitor.routes())
    server.start()
    monitor.start()
    log.info("lag exporter started", group=group, topics=sorted(tables), http_port=server.port)
    try:
        stop.wait()
    finally:
        server.stop()
        monitor.stop()


def _sampled_within(monitor: LagMonitor, seconds: float) -> bool:
    latest = monitor.latest()
    return latest is not None and time.time() - latest.at < seconds
