"""Structured logs carry correlation fields and never a secret."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import structlog

from lakesync.logs import configure_logging, correlation, get_logger, redact_secrets, register_secrets


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


def test_logging_outlives_a_stderr_that_was_swapped_in_and_closed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI runner configures logging on its own stderr, then closes it: later lines still land."""
    borrowed = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", borrowed)
        configure_logging("INFO", "json")
        get_logger("x").info("during")
    borrowed.close()
    get_logger("x").info("after")
    logging.getLogger("stdlib").warning("after too")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["after", "after too"]


def test_secret_named_keys_are_masked_at_any_depth() -> None:
    event = redact_secrets(None, "info", {"conf": {"spark.hadoop.fs.s3a": {"secret.key": "s"}}, "api_token": "t"})
    assert event == {"conf": {"spark.hadoop.fs.s3a": {"secret.key": "**********"}}, "api_token": "**********"}


def test_registered_secret_values_never_reach_a_line_not_even_in_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lakesync.logs._known_secrets", set())
    register_secrets(["s3cr3t-value"])
    configure_logging("DEBUG", "json")
    log = get_logger("x")
    log.info("connecting with s3cr3t-value", dsn="user:s3cr3t-value@host")
    try:
        raise RuntimeError("auth failed for s3cr3t-value")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("stdlib").warning("stdlib says s3cr3t-value")
    err = capsys.readouterr().err
    assert "s3cr3t-value" not in err and err.count("**********") >= 4
