"""librdkafka's lines reach lakesync's log rate-limited, at levels that say what they mean."""

from __future__ import annotations

import logging
import pickle
import time

import pytest
from confluent_kafka import Producer

from deploy.processes import free_port
from lakesync.config import KafkaSettings
from lakesync.logs import KafkaLogBridge


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "lakesync.kafka"]


def test_a_facility_repeats_once_per_interval_and_says_how_many_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "lakesync.kafka")
    bridge = KafkaLogBridge(interval_s=0.2)
    for _ in range(50):
        bridge.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connection refused")
    time.sleep(0.25)
    bridge.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connection refused")
    first, second = lines(caplog)
    assert first.getMessage() == "Connection refused" and not hasattr(first, "held_back")
    assert second.held_back == 49  # type: ignore[attr-defined]  # the bridge adds these fields to its log records (extra=)


def test_facilities_and_clients_are_limited_separately(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "lakesync.kafka")
    bridge = KafkaLogBridge(interval_s=60)
    for facility, client in [("FAIL", "a"), ("FAIL", "b"), ("ERROR", "a"), ("FAIL", "a")]:
        bridge.log(logging.ERROR, "%s [%s] %s", facility, client, "x")
    assert [(r.facility, r.client) for r in lines(caplog)] == [("FAIL", "a"), ("FAIL", "b"), ("ERROR", "a")]  # type: ignore[attr-defined]  # the bridge adds these fields to its log records (extra=)


def test_failures_librdkafka_retries_are_warnings_and_quiet_bridges_say_everything_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "lakesync.kafka")
    KafkaLogBridge().log(logging.ERROR, "%s [%s] %s", "FAIL", "c1", "refused")
    KafkaLogBridge().log(logging.CRITICAL, "%s [%s] %s", "FATAL", "c1", "fenced")
    KafkaLogBridge(quiet=True).log(logging.ERROR, "%s [%s] %s", "FAIL", "c2", "refused")
    assert [r.levelno for r in lines(caplog)] == [logging.WARNING, logging.ERROR, logging.DEBUG]


def test_a_bridge_travels_to_spark_executors_inside_a_producer_config() -> None:
    copy = pickle.loads(pickle.dumps(KafkaLogBridge(5.0, quiet=True)))
    assert isinstance(copy, KafkaLogBridge) and copy._interval_s == 5.0 and copy._quiet


def test_a_real_client_against_a_closed_port_logs_one_line_not_hundreds(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """librdkafka retries the connection every few milliseconds; the log gets one line, raw stderr none."""
    caplog.set_level(logging.DEBUG, "lakesync.kafka")
    producer = Producer(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}").client_config())
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        producer.poll(0.1)
    failures = [r for r in lines(caplog) if r.facility == "FAIL"]  # type: ignore[attr-defined]  # the bridge adds these fields to its log records (extra=)
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING
    assert "%3|" not in capfd.readouterr().err  # librdkafka's own stderr format
