"""Transient, poison or fatal: decided by exception type and SQLSTATE, never by message text."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from changes.errors import EnvelopeError
from streaming.consumer.classify import Failure, classify
from streaming.consumer.errors import DeadLetterDeliveryError, UnconvertibleValueError


@pytest.mark.parametrize(
    "sqlstate", ["08006", "08001", "40001", "40P01", "57P01", "53300", "57P03", "53100", "55P03", "57014"]
)
def test_connection_serialization_and_operator_conditions_are_transient(sqlstate: str) -> None:
    """Lock and statement timeouts (55P03, 57014) and a cancel on revoke are retried, not fatal."""
    assert classify(errors.lookup(sqlstate)("whatever the text")) is Failure.TRANSIENT


@pytest.mark.parametrize("sqlstate", ["22P02", "22003", "22021", "23505", "23502", "23514", "21000"])
def test_data_and_integrity_errors_are_poison(sqlstate: str) -> None:
    """21000: two staged rows PostgreSQL sees as one key (e.g. numeric "1.0" and "1.00"); bisection parts them."""
    assert classify(errors.lookup(sqlstate)("server closed the connection")) is Failure.POISON


@pytest.mark.parametrize("sqlstate", ["42703", "42P01", "42501", "XX000"])
def test_schema_permission_and_internal_errors_are_fatal(sqlstate: str) -> None:
    assert classify(errors.lookup(sqlstate)("connection lost")) is Failure.FATAL


def test_client_side_conditions() -> None:
    assert classify(psycopg.OperationalError("connection lost")) is Failure.TRANSIENT  # no SQLSTATE
    assert classify(PoolTimeout("no connection")) is Failure.TRANSIENT
    assert classify(DeadLetterDeliveryError("unacknowledged")) is Failure.TRANSIENT
    assert classify(EnvelopeError("not JSON")) is Failure.POISON
    assert classify(UnconvertibleValueError("a list")) is Failure.POISON
    assert classify(psycopg.ProgrammingError("bad query")) is Failure.FATAL
    assert classify(RuntimeError("bug")) is Failure.FATAL
