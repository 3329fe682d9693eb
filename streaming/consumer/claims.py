"""Claiming partitions in PostgreSQL: which consumer writes a partition, and from which offset.

Kafka assigns partitions; PostgreSQL decides who may write them. When a partition is assigned
the consumer pauses it and hands a `ClaimRequest` to this thread, which in one statement sets
the partition's `owner` in lakesync.consumer_offsets to a fresh token and returns the stored
next offset (creating the row at 0 the first time). The statement waits for a batch of the
previous owner that still holds the row's lock, so the offset it returns is final. Only then
does the Kafka thread seek the partition there and resume it. Every batch carries the token it
was read under and commits only while the row still holds it (apply.py).

The claim runs on this thread, never in the rebalance callback, so an assignment never waits
for PostgreSQL: while PostgreSQL is down the claim is retried like a batch (tenacity, backoff
with jitter, until `consumer.retry_deadline_s`) and the partitions stay paused, while the Kafka
thread keeps polling — the group keeps us and /healthz stays 200. A revoke cancels the claims of
its partitions, the one in flight included (its statement is cancelled, nothing is written).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import psycopg
import tenacity
from psycopg_pool import ConnectionPool

from connectors.postgres import cancel_statement
from lakesync.config import ConsumerSettings
from lakesync.logs import get_logger
from streaming.consumer import metrics, statements
from streaming.consumer.assignment import ClaimRequest
from streaming.consumer.classify import is_transient, sqlstate_of
from streaming.consumer.errors import ClaimAbandonedError

log = get_logger("lakesync.consumer.claims")


@dataclass
class ClaimResult:
    """A claim done (the stored next offset per partition) or given up (the error)."""

    request: ClaimRequest
    offsets: dict[int, int] | None = None
    error: BaseException | None = None


class PartitionClaims(threading.Thread):
    """Runs claim requests one at a time on a pool connection; results go to `results`."""

    def __init__(self, pool: ConnectionPool, settings: ConsumerSettings, group_id: str) -> None:
        super().__init__(name="lakesync-claims", daemon=True)
        self._pool = pool
        self._settings = settings
        self._group_id = group_id
        self._requests: queue.Queue[ClaimRequest | None] = queue.Queue()
        self.results: queue.Queue[ClaimResult] = queue.Queue()
        self._pending: set[str] = set()
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()  # cuts a retry's backoff short on cancel or stop
        self._current: ClaimRequest | None = None
        self._conn: psycopg.Connection | None = None
        self._stopped = threading.Event()

    # --- called from the Kafka thread ---------------------------------------------------------

    def request(self, claim: ClaimRequest) -> None:
        with self._lock:
            self._pending.add(claim.token)
        self._requests.put(claim)

    def cancel(self, tokens: set[str]) -> None:
        """Give up the claims made under `tokens`: pending ones are skipped, the running one cancelled."""
        if not tokens:
            return
        with self._lock:
            self._cancelled |= tokens & self._pending
            running = self._current is not None and self._current.token in tokens
            conn = self._conn if running else None
        self._wake.set()
        if conn is not None:
            cancel_statement(conn)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._requests.put(None)
        with self._lock:
            conn = self._conn
        if conn is not None:
            cancel_statement(conn)

    # --- the thread -------------------------------------------------------------------------

    def run(self) -> None:
        while not self._stopped.is_set():
            claim = self._requests.get()
            if claim is None:
                return
            if not self._is_cancelled(claim):
                self.results.put(self._attempt(claim))
            with self._lock:
                self._pending.discard(claim.token)
                self._cancelled.discard(claim.token)

    def _attempt(self, claim: ClaimRequest) -> ClaimResult:
        with self._lock:
            self._current = claim
        self._wake.clear()
        try:
            return ClaimResult(claim, offsets=self._claim_with_retries(claim))
        except BaseException as exc:  # noqa: BLE001 (handed to the Kafka thread, which decides)
            return ClaimResult(claim, error=exc)
        finally:
            with self._lock:
                self._current = None

    def _claim_with_retries(self, claim: ClaimRequest) -> dict[int, int]:
        settings = self._settings
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: is_transient(exc) and not self._is_cancelled(claim)),
            wait=tenacity.wait_exponential_jitter(
                multiplier=settings.retry_initial_backoff_s,
                max=settings.retry_max_backoff_s,
                jitter=settings.retry_initial_backoff_s,
            ),
            stop=tenacity.stop_after_delay(settings.retry_deadline_s) | tenacity.stop_when_event_set(self._stopped),
            sleep=cast("Callable[[float], None]", self._wake.wait),  # tenacity ignores what wait() returns
            before_sleep=lambda state: self._before_retry(claim, state),
            reraise=True,
        )
        try:
            return retrying(self._claim, claim)
        except Exception as exc:
            if self._is_cancelled(claim) or self._stopped.is_set():
                raise ClaimAbandonedError(f"claim of {claim.topic}{list(claim.partitions)} given up") from exc
            raise

    def _claim(self, claim: ClaimRequest) -> dict[int, int]:
        if self._is_cancelled(claim):
            raise ClaimAbandonedError(f"claim of {claim.topic}{list(claim.partitions)} given up")
        with self._pool.connection() as conn:
            with self._lock:
                self._conn = conn
            try:
                with conn.transaction():
                    query = statements.claim_partitions(self._group_id, claim.topic, claim.partitions, claim.token)
                    return dict(conn.execute(*query).fetchall())
            finally:
                with self._lock:
                    self._conn = None

    def _before_retry(self, claim: ClaimRequest, state: tenacity.RetryCallState) -> None:
        metrics.RETRIES.inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "claiming partitions failed, retrying",
            topic=claim.topic,
            partitions=list(claim.partitions),
            error_class=type(error).__name__,
            sqlstate=sqlstate_of(error) if error else None,
            attempt=state.attempt_number,
            failing_for_s=round(cast(float, state.seconds_since_start), 1),  # set once an attempt ran
        )

    def _is_cancelled(self, claim: ClaimRequest) -> bool:
        with self._lock:
            return claim.token in self._cancelled
