"""Lag read from the brokers alone: offsets, record timestamps, ownership, `lakesync lag` and `--serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.kafka import CHANGE_TOPIC_CONFIG, ensure_topics, producer_config
from deploy.processes import free_port
from lakesync.config import LakesyncSettings
from observability.kafka_offsets import OffsetReader
from tests.support.config_file import write_config
from tests.support.lag_checks import http_get, lag_json, scrape, settings_for
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

AGE_S = 120.0


@pytest.fixture
def backlog(settings: LakesyncSettings, unique_name: str) -> LakesyncSettings:
    """A 3-partition topic holding 5, 3 and 0 records produced two minutes ago, nothing committed."""
    lag_settings = settings_for(settings, unique_name, kafka={"topic_partitions": 3})
    topic = lag_settings.tables[0].topic_name
    ensure_topics(lag_settings.kafka, [topic], config=CHANGE_TOPIC_CONFIG)
    producer = Producer(producer_config(lag_settings.kafka))
    produced_ms = int((time.time() - AGE_S) * 1000)
    for partition, count in ((0, 5), (1, 3)):
        for i in range(count):
            producer.produce(topic, key=f"k{i}".encode(), value=b"{}", partition=partition, timestamp=produced_ms + i)
    assert producer.flush(30) == 0
    return lag_settings


def commit(settings: LakesyncSettings, offsets: dict[int, int]) -> None:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": settings.consumer.group_id})
    try:
        topic = settings.tables[0].topic_name
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def test_sample_reads_offsets_record_age_and_ownership(backlog: LakesyncSettings) -> None:
    topic, group = backlog.tables[0].topic_name, backlog.consumer.group_id
    commit(backlog, {0: 2})
    reader = OffsetReader(backlog.kafka)
    try:
        sample = reader.sample(group, [topic, f"{topic}-missing"])
        p0, p1, p2 = (sample.partitions[(topic, p)] for p in range(3))
        assert (p0.committed, p0.log_end, p0.offset_lag) == (2, 5, 3)
        assert (p1.committed, p1.offset_lag) == (None, 3)  # never committed: lag from the log start
        assert (p2.offset_lag, p2.oldest_unapplied_ts) == (0, None)
        assert sample.members == 0 and p0.owned is False
        assert sample.missing_topics == (f"{topic}-missing",)
        # The record at the committed offset (the third produced) was stamped two minutes ago.
        assert p0.time_lag_s(sample.at) == pytest.approx(AGE_S, abs=5)
        assert p1.time_lag_s(sample.at) == pytest.approx(AGE_S, abs=5)

        member = Consumer({**backlog.kafka.client_config(), "group.id": group, "enable.auto.commit": False})
        try:
            member.subscribe([topic])
            wait_until(lambda: member.poll(0.2) is None and bool(member.assignment()), 30, "an assignment")
            owned = reader.sample(group, [topic])
            assert owned.members == 1
            assert all(p.owned for p in owned.partitions.values())
        finally:
            member.close()
    finally:
        reader.close()


def test_lag_command_statuses_and_exit_codes(backlog: LakesyncSettings, tmp_path: Path) -> None:
    """No member and lag: STOP (6); caught up: OK (0); committed past the end: ERR (7)."""
    config = write_config(tmp_path / "lakesync.toml", backlog)
    code, verdict = lag_json(config, "--window", "0")
    assert (code, verdict["status"], verdict["members"], verdict["offset_lag"]) == (6, "STOP", 0, 8)
    stopped = {p["partition"]: p for p in verdict["partitions"]}
    assert stopped[0]["status"] == "STOP" and stopped[2]["status"] == "OK"
    assert stopped[0]["time_lag_s"] == pytest.approx(AGE_S, abs=10)
    assert verdict["tables"][0]["table"] == backlog.tables[0].name

    commit(backlog, {0: 5, 1: 3})
    code, verdict = lag_json(config, "--window", "2", "--interval", "1")
    assert (code, verdict["status"], verdict["offset_lag"], verdict["samples"]) == (0, "OK", 0, 3)

    commit(backlog, {0: 50})
    code, verdict = lag_json(config, "--window", "0")
    assert (code, verdict["status"]) == (7, "ERR")
    assert "past the log end" in verdict["reason"]


def test_lag_command_prints_a_table(backlog: LakesyncSettings, tmp_path: Path) -> None:
    from tests.support.lag_checks import cli

    result = cli(write_config(tmp_path / "lakesync.toml", backlog), "lag", "--window", "0")
    assert result.returncode == 6, result.stderr
    header = next(line for line in result.stdout.splitlines() if "offset lag" in line)
    for column in ("group", "topic", "partition", "offset lag", "time lag", "status"):
        assert column in header
    assert result.stdout.count("STOP") >= 3  # the title and the two lagging partitions


def test_lag_command_reports_a_missing_topic_as_err(
    settings: LakesyncSettings, unique_name: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "lakesync.toml", settings_for(settings, unique_name))
    code, verdict = lag_json(config, "--window", "0")
    assert (code, verdict["status"]) == (7, "ERR")
    assert f"lakesync.{unique_name}" in verdict["reason"]


def test_serve_keeps_reporting_a_group_without_members(backlog: LakesyncSettings, tmp_path: Path) -> None:
    """The exporter reads the brokers: with nobody consuming, the lag is still there, STOP."""
    config = write_config(tmp_path / "lakesync.toml", backlog)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESYNC_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lakesync",
            "--log-format",
            "json",
            "--config",
            str(config),
            "lag",
            "--serve",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_until(lambda: _answers(port, "/lag"), 30, "the exporter's first sample")
        status, body = http_get(port, "/lag")
        verdict = json.loads(body)
        assert (status, verdict["status"], verdict["members"]) == (200, "STOP", 0)
        metrics = scrape(port)
        group, topic = backlog.consumer.group_id, backlog.tables[0].topic_name
        assert metrics[f'lakesync_consumer_group_lag{{group="{group}",partition="0",topic="{topic}"}}'] == 5
        assert metrics[f'lakesync_consumer_group_lag_seconds{{group="{group}",partition="0",topic="{topic}"}}'] >= AGE_S
        assert metrics[f'lakesync_consumer_group_members{{group="{group}"}}'] == 0
        assert metrics[f'lakesync_consumer_group_status{{group="{group}"}}'] == 3
        assert http_get(port, "/readyz")[0] == 200
        page_status, page = http_get(port, "/dashboard")
        assert page_status == 200 and b"dashboard/dashboard.js" in page
        assert http_get(port, "/dashboard/dashboard.js")[0] == 200
        history = json.loads(http_get(port, "/lag/history")[1])
        assert history["partitions"] and len(history["times"]) >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=15)[0].decode()
    assert process.returncode == 0, output


def _answers(port: int, path: str) -> bool:
    try:
        return http_get(port, path)[0] == 200
    except OSError:
        return False
