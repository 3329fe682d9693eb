"""The apply thread: takes prepared batches one at a time and writes them, retrying transient errors.

The Kafka thread (service.py) decodes the next batch while this one writes the current one:
psycopg waits for PostgreSQL with the GIL released, so decoding and the server's work overlap.
The hand-over queue holds one batch, which bounds memory to about two batches.

Retries use tenacity: exponential backoff with jitter, until `retry_deadline_s`. `abandon()`
stops them at once (shutdown, rebalance): nothing of an abandoned batch was committed, and the
offsets in PostgreSQL still point before it.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import tenacity

from connectors.postgres_schema import TableRef
from lakesync.config import ConsumerSettings
from lakesync.logs import correlation, get_logger
from streaming.consumer import metrics, statements
from streaming.consumer.apply import BatchApplier, BatchResult
from streaming.consumer.batch import PreparedBatch
from streaming.consumer.classify import classify, is_transient, sqlstate_of
from streaming.consumer.errors import BatchAbandonedError

log = get_logger("lakesync.consumer.worker")


@dataclass
class Outcome:
    """A batch and what became of it: a result, or the error that ended its retries."""

    batch: PreparedBatch
    result: BatchResult | None = None
    error: BaseException | None = None


class ApplyWorker(threading.Thread):
    def __init__(
        self, applier: BatchApplier, settings: ConsumerSettings, pool_owner: object, tombstone_refs: list[TableRef]
    ) -> None:
        super().__init__(name="lakesync-apply", daemon=True)
        self._applier = applier
        self._settings = settings
        self._pool = pool_owner
        self._tombstone_refs = tombstone_refs
        self._inbox: queue.Queue[PreparedBatch | None] = queue.Queue(maxsize=1)
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self._abandon = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self.retrying = False
        self._next_cleanup = time.monotonic() + settings.tombstone_cleanup_interval_s

    # --- called from the Kafka thread ---------------------------------------------------------

    def offer(self, batch: PreparedBatch, timeout_s: float) -> bool:
        """Queue `batch` if the worker has room within `timeout_s`."""
        self._idle.clear()  # before the put: the worker may take it at once and set idle again
        try:
            self._inbox.put(batch, timeout=timeout_s)
        except queue.Full:
            return False
        return True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or being applied."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._inbox.empty() and self._idle.wait(0.05):
                return True
        return self._inbox.empty() and self._idle.is_set()

    def abandon(self, timeout_s: float) -> bool:
        """Drop the queued batch, stop retrying the current one; True once the worker is idle."""
        self._abandon.set()
        try:
            self._inbox.get_nowait()
        except queue.Empty:
            pass
        idle = self.wait_idle(timeout_s)
        self._abandon.clear()
        return idle

    def stop(self) -> None:
        self._abandon.set()
        try:
            self._inbox.get_nowait()
        except queue.Empty:
            pass
        self._inbox.put(None)

    # --- the thread -------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            try:
                batch = self._inbox.get(timeout=1.0)
            except queue.Empty:
                self._idle.set()
                self._maybe_purge_tombstones()
                continue
            if batch is None:
                self._idle.set()
                return
            self._idle.clear()
            self.outcomes.put(self._attempt(batch))
            if self._inbox.empty():
                self._idle.set()
            self._maybe_purge_tombstones()

    def _attempt(self, batch: PreparedBatch) -> Outcome:
        with correlation(tables=batch.tables, topics=batch.topics, offsets=batch.describe_offsets()):
            try:
                return Outcome(batch, result=self._apply_with_retries(batch))
            except BaseException as exc:  # noqa: BLE001 (handed to the Kafka thread, which decides)
                return Outcome(batch, error=exc)
            finally:
                self.retrying = False

    def _apply_with_retries(self, batch: PreparedBatch) -> BatchResult:
        if self._abandon.is_set():
            raise BatchAbandonedError("batch abandoned before it started")
        settings = self._settings
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_exponential_jitter(
                multiplier=settings.retry_initial_backoff_s,
                max=settings.retry_max_backoff_s,
                jitter=settings.retry_initial_backoff_s,
            ),
            stop=tenacity.stop_after_delay(settings.retry_deadline_s) | tenacity.stop_when_event_set(self._abandon),
            sleep=self._abandon.wait,
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            return retrying(self._applier.apply, batch)
        except Exception as exc:
            if self._abandon.is_set() and is_transient(exc):
                raise BatchAbandonedError("batch abandoned while retrying") from exc
            raise

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        self.retrying = True
        metrics.RETRIES.inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "transient error, retrying",
            error_class=type(error).__name__,
            sqlstate=sqlstate_of(error) if error else None,
            error=str(error).strip().splitlines()[0] if error and str(error).strip() else None,
            attempt=state.attempt_number,
            sleep_s=round(state.upcoming_sleep, 2),
            failing_for_s=round(state.seconds_since_start, 1),
        )

    def _maybe_purge_tombstones(self) -> None:
        if time.monotonic() < self._next_cleanup:
            return
        self._next_cleanup = time.monotonic() + self._settings.tombstone_cleanup_interval_s
        try:
            purged = purge_tombstones(self._pool, self._tombstone_refs, self._settings.tombstone_retention_s)
        except Exception as exc:  # noqa: BLE001 (a later round tries again; the guard stays correct meanwhile)
            log.warning("tombstone cleanup failed", error_class=type(exc).__name__, failure=classify(exc).value)
            return
        if purged:
            log.info("tombstones purged", rows=purged)


def purge_tombstones(pool: object, refs: list[TableRef], retention_s: float) -> int:
    """Delete tombstones older than the retention in every target's tombstone table that exists."""
    from connectors.postgres_schema import BOOKKEEPING_SCHEMA, tombstone_table_name

    purged = 0
    with pool.connection() as conn:  # type: ignore[attr-defined]
        for ref in refs:
            found = conn.execute(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))",
                (BOOKKEEPING_SCHEMA, tombstone_table_name(ref)),
            ).fetchone()
            if found and found[0] is not None:
                purged += conn.execute(statements.purge_tombstones(ref), (retention_s,)).rowcount
            conn.commit()
    return purged
