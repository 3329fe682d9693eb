"""Structured logs carry correlation fields and never a secret."""

from __future__ import annotations

import json

import pytest
import structlog

from lakesync.logs import configure_logging, correlation, get_logger, redact_secrets


def test_correlation_fields_reach_every_line_in_the_block(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = get_logger("test")
    with correlation(table="people", batch_id=7):
        log.info("batch applied", rows=3)
    log.info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["table"] == "people" and lines[0]["batch_id"] == 7 and lines[0]["rows"] == 3
    assert "table" not in lines[1]


def test_secret_keys_are_redacted() -> None:
    event = redact_secrets(None, "info", {"password": "x", "client": {"sasl.password": "y", "acks": "all"}})
    assert event == {"password": "**********", "client": {"sasl.password": "**********", "acks": "all"}}


def test_json_is_used_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "auto")
    structlog.get_logger("x").warning("hello", n=1)
    record = json.loads(capsys.readouterr().err)
    assert record["event"] == "hello" and record["level"] == "warning" and "timestamp" in record
