"""`lakesync consume` as a service: crashes, signals, a PostgreSQL outage, a shared group, start-up."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.consumer_position import applied_offsets
from deploy.embedded_postgres import PostgresServer
from deploy.processes import free_port
from lakesync.config import LakesyncSettings
from tests.support.config_file import write_config
from tests.support.consumer_run import running, wait_caught_up
from tests.support.consumer_topics import Message, create_topic, make_settings, produce, rows, start_cli, upsert
from tests.support.wait import holds_for, wait_until

pytestmark = pytest.mark.integration


def backlog(name: str, keys: int, versions: int) -> tuple[list[Message], list[tuple[Any, ...]]]:
    """`versions` upserts of each key, interleaved, and the table they must end in."""
    messages = [upsert(name, k, v, name=f"k{k}v{v}") for v in range(1, versions + 1) for k in range(keys)]
    expected = [(k, f"k{k}v{versions}", Decimal("1.00"), versions) for k in range(keys)]
    return messages, expected


def applied_so_far(settings: LakesyncSettings) -> int:
    return sum(applied_offsets(settings, settings.tables[0].topic_name).values())


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sigkill_mid_batch_then_restart_loses_and_doubles_nothing(
    table_settings: LakesyncSettings, tmp_path: Path
) -> None:
    """Killed with SIGKILL while applying, the restarted service resumes from the stored offsets."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    settings = make_settings(table_settings, name, batch_max_messages=400)
    messages, expected = backlog(name, 4000, 5)
    produce(settings, topic, messages)
    config = write_config(tmp_path / "lakesync.toml", settings)

    first = start_cli(config, tmp_path / "first.log")
    wait_until(lambda: applied_so_far(settings) > 2000, 60, "some batches applied")
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    partial = applied_so_far(settings)
    assert 0 < partial < len(messages), "the kill must land mid-run"

    second = start_cli(config, tmp_path / "second.log")
    try:
        wait_caught_up(settings, topic, 90)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    assert rows(settings, name) == expected
    assert applied_so_far(settings) == len(messages)


def test_sigterm_stops_within_ten_seconds_and_a_restart_finishes(
    table_settings: LakesyncSettings, tmp_path: Path
) -> None:
    """SIGTERM during a backlog: exit code 0 in < 10 s; what was committed is kept, the rest follows."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    settings = make_settings(table_settings, name, batch_max_messages=300)
    messages, expected = backlog(name, 3000, 4)
    produce(settings, topic, messages)
    process = start_cli(write_config(tmp_path / "lakesync.toml", settings), tmp_path / "consume.log")
    wait_until(lambda: applied_so_far(settings) > 0, 60, "a first batch")
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(15)
    elapsed = time.monotonic() - started
    log = (tmp_path / "consume.log").read_text()
    assert code == 0, log[-3000:]
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert '"consumer stopped"' in log
    assert applied_so_far(settings) < len(messages), "stopped before the end: the restart has work to do"

    with running(settings):
        wait_caught_up(settings, topic)
    assert rows(settings, name) == expected


def test_postgres_down_for_20_seconds_the_service_recovers_alone(
    settings: LakesyncSettings, unique_name: str, scratch_root: Path, tmp_path: Path
) -> None:
    """Partitions pause, /readyz turns 503, retries back off; after the restart all rows arrive."""
    server = PostgresServer(scratch_root / f"pg-outage-{unique_name}")
    server.start()
    try:
        data = settings.model_dump()
        data["postgres"].update(port=server.port, password=server.password)
        base = LakesyncSettings(**data)
        http_port = free_port()
        outage = make_settings(base, unique_name, batch_max_messages=500, http_port=http_port, http_host="127.0.0.1")
        topic = outage.tables[0].topic_name
        create_topic(outage, topic)
        messages, expected = backlog(unique_name, 2000, 3)
        produce(outage, topic, messages[:2000])
        process = start_cli(write_config(tmp_path / "lakesync.toml", outage), tmp_path / "consume.log")
        try:
            wait_caught_up(outage, topic, 60)
            wait_until(lambda: http_status(http_port, "/readyz") == 200, 30, "/readyz 200")
            port = server.port
            server.stop()
            down_since = time.monotonic()
            produce(outage, topic, messages[2000:])
            wait_until(lambda: http_status(http_port, "/readyz") == 503, 30, "/readyz 503 while PostgreSQL is down")
            assert http_status(http_port, "/healthz") == 200
            # The outage lasts 20 s in all: the service lives through it (paused, retrying).
            outage_left_s = max(0.0, 20.0 - (time.monotonic() - down_since))
            holds_for(
                lambda: process.poll() is None, outage_left_s, "the service alive during the outage", interval_s=1.0
            )
            server.start()
            assert server.port == port
            wait_caught_up(outage, topic, 90)
            assert http_status(http_port, "/readyz") == 200
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as response:
                exposition = response.read().decode()
            assert "lakesync_consumer_retries_total" in exposition
            applied = f'lakesync_consumer_rows_applied_total{{op="upsert",table="{unique_name}"}} '
            upserted = [
                float(line.removeprefix(applied)) for line in exposition.splitlines() if line.startswith(applied)
            ]
            assert upserted and upserted[0] >= 4000  # 6000 events, some compacted within a batch
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(15)
        log = (tmp_path / "consume.log").read_text()
        assert code == 0, log[-3000:]
        assert '"transient error, retrying"' in log and '"partitions paused while PostgreSQL is unavailable"' in log
        assert '"partitions resumed"' in log
        assert rows(outage, unique_name) == expected
    finally:
        server.stop()


def test_two_instances_share_the_partitions_and_agree(table_settings: LakesyncSettings) -> None:
    """Two members of one group each get partitions; together they write the expected table."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    first = make_settings(table_settings, name, batch_max_messages=500, group_instance_id="one")
    second = make_settings(table_settings, name, batch_max_messages=500, group_instance_id="two")
    messages, expected = backlog(name, 1500, 3)
    with running(first) as one, running(second) as two:
        wait_until(lambda: bool(one.assignment.ready()) and bool(two.assignment.ready()), 60, "both members claimed")
        assert not set(one.assignment.partitions()) & set(two.assignment.partitions())
        produce(first, topic, messages)
        wait_caught_up(first, topic)
    assert rows(first, name) == expected


def test_a_type_change_stops_the_service_with_exit_3_and_the_fix(
    table_settings: LakesyncSettings, tmp_path: Path
) -> None:
    """An envelope column whose type differs from the target's is a schema problem, not poison."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    with psycopg.connect(**table_settings.postgres.connection_kwargs()) as conn:
        conn.execute(
            f'CREATE TABLE public."{name}" (id bigint PRIMARY KEY, name text, price text,'
            " _lakesync_version bigint NOT NULL, _lakesync_commit_ts timestamptz)"
        )
    produce(table_settings, topic, [upsert(name, 1, 1)])
    process = start_cli(write_config(tmp_path / "lakesync.toml", table_settings), tmp_path / "consume.log")
    code = process.wait(60)
    log = (tmp_path / "consume.log").read_text()
    assert code == 3, log[-3000:]
    assert f"lakesync rebuild --table {name}" in log and "price is text but the source now sends numeric(10,2)" in log


def test_start_up_fails_fast_with_one_line(table_settings: LakesyncSettings, tmp_path: Path) -> None:
    """Unreachable PostgreSQL or Kafka, or no table to consume: one line on stderr, non-zero exit."""

    def consume(settings: LakesyncSettings) -> subprocess.CompletedProcess[str]:
        config = write_config(tmp_path / "lakesync.toml", settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESYNC_")}
        return subprocess.run(
            [sys.executable, "-m", "lakesync", "--config", str(config), "consume"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    data = table_settings.model_dump()
    data["postgres"].update(port=free_port(), password="x")
    no_postgres = consume(LakesyncSettings(**data))
    assert no_postgres.returncode == 10  # unreachable (README, exit codes)
    assert (
        no_postgres.stderr.startswith("lakesync: error: PostgreSQL at 127.0.0.1:")
        and no_postgres.stderr.count("\n") == 1
    )

    data = table_settings.model_dump()
    data["postgres"]["password"] = table_settings.postgres.password.get_secret_value()  # type: ignore[union-attr]  # the session's settings carry a password
    data["kafka"]["bootstrap_servers"] = f"127.0.0.1:{free_port()}"
    no_kafka = consume(LakesyncSettings(**data))
    assert no_kafka.returncode == 10
    assert "lakesync: error: Kafka at" in no_kafka.stderr and "unreachable" in no_kafka.stderr

    data["kafka"]["bootstrap_servers"] = table_settings.kafka.bootstrap_servers
    data["tables"] = []
    no_tables = consume(LakesyncSettings(**data))
    assert no_tables.returncode == 2 and "no table configured" in no_tables.stderr


def first_batch_after(log: Path, started_at: float, timeout_s: float) -> float:
    """Seconds from `started_at` (wall clock) until the log shows a batch applied."""

    def applied() -> str | None:
        lines = log.read_text().splitlines() if log.exists() else []
        return next((line for line in lines if '"batch applied"' in line), None)

    wait_until(applied, timeout_s, "a batch applied", interval_s=0.1, details=lambda: log.read_text()[-3000:])
    event = json.loads(applied() or "")
    return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp() - started_at


def test_a_consumer_killed_and_restarted_applies_again_within_ten_seconds(
    table_settings: LakesyncSettings, tmp_path: Path
) -> None:
    """Static membership: the restarted member (same group.instance.id) gets its partitions back at
    once instead of after the session timeout (30 s here), claims them and applies."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    settings = make_settings(
        table_settings, name, batch_max_messages=300, group_instance_id="restart-me", session_timeout_s=30.0
    )
    messages, expected = backlog(name, 3000, 4)
    produce(settings, topic, messages)
    config = write_config(tmp_path / "lakesync.toml", settings)
    first = start_cli(config, tmp_path / "first.log")
    wait_until(lambda: applied_so_far(settings) > 1000, 60, "some batches applied")
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert applied_so_far(settings) < len(messages), "the kill must land mid-run"

    restarted_at = time.time()
    second = start_cli(config, tmp_path / "second.log")
    try:
        resumed_after = first_batch_after(tmp_path / "second.log", restarted_at, 30)
        assert resumed_after < 10, f"applied again only {resumed_after:.1f} s after the restart"
        wait_caught_up(settings, topic, 90)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    assert rows(settings, name) == expected


def test_postgres_down_during_a_rebalance_the_member_survives_and_converges(
    settings: LakesyncSettings, unique_name: str, scratch_root: Path, tmp_path: Path
) -> None:
    """PostgreSQL stops, a member leaves (rebalance), PostgreSQL starts again: the remaining member
    never exits, /healthz stays 200 throughout, and it claims and applies everything."""
    server = PostgresServer(scratch_root / f"pg-rebalance-{unique_name}")
    server.start()
    try:
        data = settings.model_dump()
        data["postgres"].update(port=server.port, password=server.password)
        base = LakesyncSettings(**data)
        http_port = free_port()
        stays = make_settings(
            base,
            unique_name,
            batch_max_messages=500,
            http_port=http_port,
            http_host="127.0.0.1",
            group_instance_id="stays",
        )
        leaves = make_settings(
            base, unique_name, batch_max_messages=500, group_instance_id=""
        )  # dynamic: leaves on stop
        topic = stays.tables[0].topic_name
        create_topic(stays, topic)
        messages, expected = backlog(unique_name, 2000, 3)
        produce(stays, topic, messages[:2000])
        stay = start_cli(write_config(tmp_path / "stays.toml", stays), tmp_path / "stays.log")
        leave = start_cli(write_config(tmp_path / "leaves.toml", leaves), tmp_path / "leaves.log")
        try:
            wait_caught_up(stays, topic, 60)
            wait_until(
                lambda: "partitions claimed" in (tmp_path / "leaves.log").read_text(), 30, "both members claimed"
            )
            port = server.port
            server.stop()
            produce(stays, topic, messages[2000:])
            leave.send_signal(signal.SIGTERM)
            assert leave.wait(15) == 0
            health: list[int] = []

            def alive_and_probed() -> bool:
                health.append(http_status(http_port, "/healthz"))
                return stay.poll() is None

            holds_for(alive_and_probed, 20, "the member alive during the outage", interval_s=1.0)
            log = (tmp_path / "stays.log").read_text()
            assert log.count('"partitions assigned"') >= 2, "the rebalance happened during the outage"
            assert '"claiming partitions failed, retrying"' in log
            server.start()
            assert server.port == port
            wait_caught_up(stays, topic, 90)
            assert set(health) == {200} and http_status(http_port, "/healthz") == 200
            assert stay.poll() is None
        finally:
            for process in (stay, leave):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(15)
        assert rows(stays, unique_name) == expected
    finally:
        server.stop()
