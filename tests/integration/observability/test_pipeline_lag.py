"""A live pipeline — the streaming job publishing Delta changes, the consumer applying them — seen
through `lakesync lag`, both processes' endpoints, and the built-in page in a real Chromium."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy.processes import free_port
from lakesync.config import LakesyncSettings
from streaming.consumer.service import ConsumerService
from streaming.publisher.job import StreamJob
from tests.support.config_file import write_config
from tests.support.consumer_run import running as running_consumer
from tests.support.lag_checks import ARTIFACTS, chromium, http_get, lag_json, scrape, settings_for
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

DASHBOARD_QUERIES = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards" / "lakesync-lag.json"


@dataclass
class Pipeline:
    """Delta table → StreamJob (thread) → Kafka → consumer (thread) → PostgreSQL, plus a writer."""

    spark: Any
    settings: LakesyncSettings
    config: Path
    path: str
    job: StreamJob
    consumer: ConsumerService | None = None
    _consumer_stack: ExitStack | None = None
    _stop_writing: threading.Event = field(default_factory=threading.Event)
    next_id: int = 100

    @property
    def name(self) -> str:
        return self.settings.tables[0].name

    def start_consumer(self) -> ConsumerService:
        if self.consumer is None:
            self._consumer_stack = ExitStack()
            self.consumer = self._consumer_stack.enter_context(running_consumer(self.settings))
        return self.consumer

    def stop_consumer(self) -> None:
        if self._consumer_stack is not None:
            self._consumer_stack.close()
        self.consumer, self._consumer_stack = None, None

    def write_forever(self) -> None:
        """One small Delta commit about every second, so the streaming job keeps publishing."""
        while not self._stop_writing.is_set():
            rows = [(self.next_id + i, f"n{self.next_id + i}") for i in range(6)]
            self.next_id += 6
            self.spark.createDataFrame(rows, "id long, name string").write.format("delta").mode("append").save(
                self.path
            )
            self._stop_writing.wait(1.0)

    def log_end(self) -> int:
        return sum(p["log_end_offset"] for p in lag_json(self.config, "--window", "0")[1]["partitions"])


@pytest.fixture(scope="module")
def pipeline(spark: Any, settings: LakesyncSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    root = tmp_path_factory.mktemp("lag-pipeline")
    name = "lag" + uuid.uuid4().hex[:8]
    path = str(root / "lake" / name)
    lag_settings = settings_for(
        settings,
        name,
        state_dir=root / "state",
        kafka={"topic_partitions": 3},
        stream={"trigger_interval_s": 1.0, "http_port": free_port()},
        # Dynamic membership: a stopped consumer leaves the group at once (a static member would
        # stay a member for session_timeout_s), which the STOP verdict below relies on.
        consumer={"http_port": free_port(), "http_host": "127.0.0.1", "group_instance_id": ""},
    )
    lag_settings = lag_settings.model_copy(
        update={"tables": [lag_settings.tables[0].model_copy(update={"source_path": path})]}
    )
    spark.createDataFrame([(i, f"n{i}") for i in range(30)], "id long, name string").write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(path)
    job = StreamJob(lag_settings, lag_settings.tables)
    failures: list[BaseException] = []

    def run_job() -> None:
        try:
            job.run(spark)
        except BaseException as exc:  # noqa: BLE001 (reported to the test thread)
            failures.append(exc)

    streaming = threading.Thread(target=run_job, name="test-stream-job", daemon=True)
    line = Pipeline(spark, lag_settings, write_config(root / "lakesync.toml", lag_settings), path, job)
    writer = threading.Thread(target=line.write_forever, name="test-delta-writer", daemon=True)
    try:
        line.start_consumer()
        streaming.start()
        wait_until(lambda: bool(failures) or _applied(line) >= 30, 120, "the snapshot to reach PostgreSQL")
        assert not failures, failures
        writer.start()
        yield line
    finally:
        line._stop_writing.set()
        writer.join(30) if writer.is_alive() else None
        job.request_stop()
        streaming.join(60)
        line.stop_consumer()
    assert not failures, failures


def _applied(line: Pipeline) -> int:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**line.settings.postgres.connection_kwargs()) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f"public.{line.name}",)).fetchone()
        if not found or found[0] is None:
            return 0
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", line.name))).fetchone()
    return int(row[0]) if row else 0


def until_ok(line: Pipeline, timeout_s: float) -> dict[str, Any]:
    """`lakesync lag` (3 s window) until it says OK, as an operator would run it."""
    seen: list[tuple[int, dict[str, Any]]] = []

    def says_ok() -> bool:
        seen.append(lag_json(line.config, "--window", "3", "--interval", "1"))
        return seen[-1][0] == 0

    wait_until(
        says_ok,
        timeout_s,
        "lakesync lag to say OK",
        interval_s=0,
        details=lambda: str([(code, v["status"], v["reason"]) for code, v in seen[-3:]]),
    )
    assert seen[-1][1]["status"] == "OK"
    return seen[-1][1]


def test_lag_is_ok_running_stop_when_the_consumer_stops_and_ok_again_after_restart(pipeline: Pipeline) -> None:
    """The issue's definition of done, with the real CLI against a live pipeline."""
    line = pipeline
    line.start_consumer()
    until_ok(line, 60)

    line.stop_consumer()
    # With nobody consuming, the streaming job's next records open a lag that only grows.
    wait_until(lambda: lag_json(line.config, "--window", "0")[1]["offset_lag"] > 0, 60, "unapplied records")
    code, first = lag_json(line.config, "--window", "3", "--interval", "1")
    assert (code, first["status"]) in {(6, "STOP"), (4, "WARN")}, first
    assert first["members"] == 0
    published = line.log_end()
    wait_until(lambda: line.log_end() > published, 60, "the streaming job to publish more")
    code, later = lag_json(line.config, "--window", "3", "--interval", "1")
    assert (code, later["status"]) in {(6, "STOP"), (4, "WARN")}, later
    assert later["offset_lag"] > first["offset_lag"]
    assert later["time_lag_s"] > first["time_lag_s"] > 0
    stopped = [p for p in later["partitions"] if p["offset_lag"] > 0]
    assert stopped and all(p["status"] == "STOP" for p in stopped)

    line.start_consumer()
    back = until_ok(line, 90)
    assert back["members"] == 1


def test_both_processes_export_what_the_dashboard_and_alerts_query(pipeline: Pipeline) -> None:
    """Scrape the live /metrics of the streaming job and the consumer: every dashboard metric is there."""
    import re

    line = pipeline
    consumer = line.start_consumer()
    assert consumer.http_port is not None and line.job.observer.http_port is not None
    consumer_port, stream_port = consumer.http_port, line.job.observer.http_port
    group, topic, table = line.settings.consumer.group_id, line.settings.tables[0].topic_name, line.name
    wait_until(
        lambda: f'lakesync_end_to_end_latency_seconds_count{{table="{table}"}}' in scrape(consumer_port),
        60,
        "an applied batch",
    )
    wait_until(
        lambda: f'lakesync_stream_delta_version_lag{{table="{table}"}}' in scrape(stream_port),
        60,
        "the streaming job's version lag",
    )
    # The lag monitor samples every few seconds: its first sample may predate the group join.
    members = f'lakesync_consumer_group_members{{group="{group}"}}'
    wait_until(lambda: scrape(consumer_port).get(members) == 1, 30, "the lag monitor to see the member")
    consumer_metrics, stream_metrics = scrape(consumer_port), scrape(line.job.observer.http_port)

    assert consumer_metrics[f'lakesync_consumer_rows_applied_total{{op="upsert",table="{table}"}}'] >= 30
    assert consumer_metrics[f'lakesync_end_to_end_latency_seconds_count{{table="{table}"}}'] > 0
    assert f'lakesync_consumer_group_lag{{group="{group}",partition="0",topic="{topic}"}}' in consumer_metrics
    assert f'lakesync_consumer_group_lag_seconds{{group="{group}",partition="0",topic="{topic}"}}' in consumer_metrics
    assert consumer_metrics[f'lakesync_consumer_group_members{{group="{group}"}}'] == 1
    assert stream_metrics[f'lakesync_stream_rows_total{{outcome="upsert",table="{table}"}}'] >= 30
    assert stream_metrics[f'lakesync_stream_rows_read_total{{table="{table}"}}'] >= 30
    assert stream_metrics[f'lakesync_stream_batch_duration_seconds_count{{table="{table}"}}'] > 0

    def version_lag_consistent() -> bool:  # the three gauges are set one after the other: rescrape
        found = scrape(line.job.observer.http_port)  # type: ignore[arg-type]  # the job serves HTTP here (asserted above)
        source = found[f'lakesync_stream_source_version{{table="{table}"}}']
        published = found[f'lakesync_stream_published_version{{table="{table}"}}']
        lag = found[f'lakesync_stream_delta_version_lag{{table="{table}"}}']
        return source >= 1 and source >= published >= 0 and lag == source - published

    wait_until(version_lag_consistent, 15, "latest - published = version lag")
    assert stream_metrics[f'lakesync_stream_publish_errors_total{{table="{table}"}}'] == 0
    assert http_get(line.job.observer.http_port, "/healthz")[0] == 200
    assert http_get(line.job.observer.http_port, "/readyz")[0] == 200

    live = {name.split("{", 1)[0] for name in (*consumer_metrics, *stream_metrics)}
    board = json.loads(DASHBOARD_QUERIES.read_text())
    queried = {
        m for p in board["panels"] for t in p["targets"] for m in re.findall(r"\blakesync_[a-z0-9_]+\b", t["expr"])
    }
    assert queried <= live, f"the dashboard queries metrics no live process exports: {sorted(queried - live)}"

    status, body = http_get(consumer.http_port, "/lag")
    verdict = json.loads(body)
    assert status == 200 and verdict["group"] == group and verdict["tables"][0]["table"] == table


def test_built_in_page_draws_live_lag_in_chromium(pipeline: Pipeline) -> None:
    """The consumer's /dashboard, in a real headless Chromium: status colours and charts with data."""
    line = pipeline
    consumer = line.start_consumer()
    port = consumer.http_port
    assert port is not None
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "lag-dashboard.png"
    shot.unlink(missing_ok=True)
    with chromium() as browser:
        browser.get(f"http://127.0.0.1:{port}/dashboard")

        def drawn() -> bool:
            charts = browser.find_elements("css selector", "svg.chart")
            points = {c.get_attribute("id"): int(c.get_attribute("data-points") or 0) for c in charts}
            return len(points) == 6 and all(
                points[c] >= 3
                for c in (
                    "chart-table-offset-lag",
                    "chart-table-time-lag",
                    "chart-partition-offset-lag",
                    "chart-partition-time-lag",
                )
            )

        wait_until(drawn, 60, "the charts to fill with samples")
        first_refresh = browser.find_element("tag name", "body").get_attribute("data-refreshed")
        wait_until(
            lambda: browser.find_element("tag name", "body").get_attribute("data-refreshed") != first_refresh,
            15,
            "the page to refresh itself",
        )
        badge = browser.find_element("id", "group-status")
        assert badge.get_attribute("data-status") in {"OK", "WARN", "STALL", "STOP", "ERR"}
        colour = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", badge)
        assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
        card = browser.find_element("css selector", f'.card[data-table="{line.name}"]')
        assert card.find_element("css selector", '[data-field="apply_rate"]').text.endswith("/s")
        rows = browser.find_elements("css selector", "#partitions tbody tr")
        assert len(rows) == 3
        series = browser.find_elements("css selector", "#chart-partition-offset-lag path.series")
        assert len(series) == 3 and all(s.get_attribute("d").startswith("M") for s in series)
        # Offline: every resource the page loaded came from the consumer itself.
        origins = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)"
        )
        assert set(origins) <= {f"http://127.0.0.1:{port}"}
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000


def test_one_change_can_be_followed_from_the_stream_job_to_the_postgresql_commit(pipeline: Pipeline) -> None:
    """The stream's `batch published` and the consumer's `batch applied` share topic/partition/offset ranges."""
    import structlog
    from structlog.testing import LogCapture

    pipeline.start_consumer()
    capture = LogCapture()
    previous = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:

        def followed() -> bool:
            return bool(_matches(capture.entries))

        wait_until(followed, 90, "a published batch and the consumer batch that applied it")
    finally:
        structlog.configure(**previous)
    published, applied, offset = _matches(capture.entries)[0]
    table, topic = pipeline.name, pipeline.settings.tables[0].topic_name
    assert published["table"] == table and isinstance(published["batch_id"], int) and published["topic"] == topic
    assert published["max_version"] >= published["min_version"]
    assert applied["tables"] == [table] and applied["topics"] == [topic]
    assert offset is not None


def _ranges(described: str) -> dict[int, tuple[int, int]]:
    """`topic[0:3-9,1:16-24]` -> {0: (3, 9), 1: (16, 24)} (one topic)."""
    inner = described[described.index("[") + 1 : described.rindex("]")]
    spans = {}
    for part in inner.split(","):
        partition, _, span = part.partition(":")
        first, _, last = span.partition("-")
        spans[int(partition)] = (int(first), int(last))
    return spans


def _matches(
    entries: Sequence[Mapping[str, Any]],
) -> list[tuple[Mapping[str, Any], Mapping[str, Any], tuple[int, int]]]:
    """(published line, applied line, (partition, offset)) for offsets both lines name."""
    published = [e for e in entries if e.get("event") == "batch published" and e.get("offsets")]
    applied = [e for e in entries if e.get("event") == "batch applied" and e.get("offsets")]
    found = []
    for p in published:
        for partition, (first, _last) in _ranges(p["offsets"]).items():
            for a in applied:
                span = _ranges(a["offsets"]).get(partition)
                if span and span[0] <= first <= span[1]:
                    found.append((p, a, (partition, first)))
    return found
