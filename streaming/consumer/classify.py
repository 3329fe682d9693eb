"""Which failures are worth retrying, which records are poison, and which stop the service.

Classification uses exception types and SQLSTATE codes only, never message text:

- transient (retry with backoff until the deadline): the pool could not hand out a connection,
  a connection was lost (no SQLSTATE, or class 08), serialization failure 40001, deadlock 40P01,
  admin shutdown 57P01, too many connections 53300, `lock_timeout` 55P03, any other
  `OperationalError` (psycopg's class for operator intervention and resource trouble: 53xxx,
  57xxx — `statement_timeout` and our own cancel are 57014 — 58xxx), and an unacknowledged
  dead-letter record;
- poison (isolate by bisection, dead-letter the record): data exceptions (class 22), integrity
  violations (class 23), a cardinality violation (21000: two rows of one part that PostgreSQL
  sees as one key although their JSON differs, e.g. numeric "1.0" and "1.00"; bisection puts
  them in different parts, which then apply one after the other), an undecodable envelope, a
  value psycopg cannot write;
- fatal (stop the service with the error): everything else, e.g. an undefined column (42703)
  means the target changed under us.
"""

from __future__ import annotations

from enum import Enum

import psycopg
from psycopg_pool import PoolTimeout

from changes.errors import EnvelopeError
from streaming.consumer.errors import DeadLetterDeliveryError, UnconvertibleValueError

POISON_CLASSES = frozenset({"21", "22", "23"})
TRANSIENT_CLASSES = frozenset({"08"})
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "53300", "55P03"})


class Failure(Enum):
    TRANSIENT = "transient"
    POISON = "poison"
    FATAL = "fatal"


def classify(exc: BaseException) -> Failure:
    """What to do about `exc` (see the module docstring)."""
    if isinstance(exc, (PoolTimeout, DeadLetterDeliveryError)):
        return Failure.TRANSIENT
    if isinstance(exc, (EnvelopeError, UnconvertibleValueError)):
        return Failure.POISON
    if not isinstance(exc, psycopg.Error):
        return Failure.FATAL
    sqlstate = exc.sqlstate
    if sqlstate is None:
        # No SQLSTATE: the client noticed it (connection lost, closed, server gone).
        return (
            Failure.TRANSIENT if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) else Failure.FATAL
        )
    if sqlstate[:2] in POISON_CLASSES:
        return Failure.POISON
    if sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_CLASSES:
        return Failure.TRANSIENT
    if isinstance(exc, psycopg.OperationalError):
        return Failure.TRANSIENT
    return Failure.FATAL


def is_transient(exc: BaseException) -> bool:
    return classify(exc) is Failure.TRANSIENT


def sqlstate_of(exc: BaseException) -> str | None:
    return exc.sqlstate if isinstance(exc, psycopg.Error) else None
