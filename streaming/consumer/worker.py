"""The apply lanes: threads that write partition batches, retrying transient errors.

Each partition is pinned to one lane, so its batches apply in order; lanes apply different
partitions at the same time, each batch on its own pool connection (`consumer.apply_parallelism`
lanes). The Kafka thread (service.py) decodes the next batches while the lanes write: psycopg
and Arrow wait with the GIL released, so decoding and PostgreSQL's work overlap. Each lane's
inbox holds one batch, which bounds memory to about two batches per lane.

Retries use tenacity: exponential backoff with jitter, until `retry_deadline_s`. `abandon()`
stops them at once and cancels the statement running in PostgreSQL (rebalance, shutdown):
nothing of an abandoned batch was committed, and the offsets in PostgreSQL still point before it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import cast

import psycopg
import tenacity
from psycopg_pool import ConnectionPool

from connectors.postgres import cancel_statement
from connectors.postgres_schema import TableRef
from lakesync.config import ConsumerSettings
from lakesync.logs import correlation, get_logger
from streaming.consumer import metrics, statements
from streaming.consumer.apply import BatchApplier, BatchResult
from streaming.consumer.batch import PartitionBatch, TopicPartition
from streaming.consumer.classify import classify, is_transient, sqlstate_of
from streaming.consumer.errors import BatchAbandonedError

log = get_logger("lakesync.consumer.worker")


@dataclass
class Outcome:
    """A batch and what became of it: a result, or the error that ended its retries."""

    batch: PartitionBatch
    result: BatchResult | None = None
    error: BaseException | None = None


class ApplyLane(threading.Thread):
    """One apply thread; the batches it is given are applied one after the other."""

    def __init__(
        self,
        index: int,
        applier: BatchApplier,
        settings: ConsumerSettings,
        pool: ConnectionPool,
        outcomes: queue.Queue[Outcome],
        is_current: Callable[[PartitionBatch], bool],
        idle_work: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(name=f"lakesync-apply-{index}", daemon=True)
        self._applier = applier
        self._settings = settings
        self._pool = pool
        self._outcomes = outcomes
        self._is_current = is_current
        self._idle_work = idle_work
        self._inbox: queue.Queue[PartitionBatch | None] = queue.Queue(maxsize=1)
        self._abandon = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self.current: PartitionBatch | None = None
        self.retrying = False

    # --- called from the Kafka thread ---------------------------------------------------------

    def offer(self, batch: PartitionBatch, timeout_s: float) -> bool:
        """Queue `batch` if the lane has room within `timeout_s`."""
        self._idle.clear()  # before the put: the lane may take it at once and set idle again
        try:
            self._inbox.put(batch, timeout=timeout_s)
        except queue.Full:
            if self.current is None and self._inbox.empty():
                self._idle.set()
            return False
        return True

    def is_idle(self) -> bool:
        return self._inbox.empty() and self._idle.is_set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or being applied."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._inbox.empty() and self._idle.wait(0.05):
                return True
        return self.is_idle()

    def abandon(self, partitions: Collection[TopicPartition] | None = None) -> PartitionBatch | None:
        """Drop the queued batch and stop the running one if they are of `partitions` (None: any).

        Returns the running batch being stopped, if any (see `wait_done`).
        """
        try:
            queued = self._inbox.get_nowait()
        except queue.Empty:
            queued = None
        if queued is not None and partitions is not None and queued.tp not in partitions:
            self._inbox.put_nowait(queued)  # only the Kafka thread puts: there is room again
        current = self.current
        if current is None or (partitions is not None and current.tp not in partitions):
            return None
        self._abandon.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            cancel_statement(conn)
        return current

    def wait_done(self, batch: PartitionBatch, timeout_s: float) -> bool:
        """Wait until the lane no longer works on `batch`."""
        deadline = time.monotonic() + timeout_s
        while self.current is batch and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.current is not batch

    def stop(self) -> None:
        self.abandon()
        self._inbox.put(None)

    # --- the thread -------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            try:
                batch = self._inbox.get(timeout=1.0)
            except queue.Empty:
                self._idle.set()
                self._idle_work()
                continue
            if batch is None:
                self._idle.set()
                return
            self._idle.clear()
            self._abandon.clear()
            self.current = batch
            try:
                self._outcomes.put(self._attempt(batch))
            finally:
                self.current = None
            if self._inbox.empty():
                self._idle.set()

    def _attempt(self, batch: PartitionBatch) -> Outcome:
        with correlation(tables=[batch.table.name], topics=[batch.topic], offsets=batch.describe_offsets()):
            try:
                return Outcome(batch, result=self._apply_with_retries(batch))
            except BaseException as exc:  # noqa: BLE001 (handed to the Kafka thread, which decides)
                return Outcome(batch, error=exc)
            finally:
                self.retrying = False

    def _apply_with_retries(self, batch: PartitionBatch) -> BatchResult:
        if not self._is_current(batch):
            raise BatchAbandonedError("the partition was revoked or claimed again before the batch started")
        settings = self._settings
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_exponential_jitter(
                multiplier=settings.retry_initial_backoff_s,
                max=settings.retry_max_backoff_s,
                jitter=settings.retry_initial_backoff_s,
            ),
            stop=tenacity.stop_after_delay(settings.retry_deadline_s) | tenacity.stop_when_event_set(self._abandon),
            sleep=cast("Callable[[float], None]", self._abandon.wait),  # tenacity ignores what wait() returns
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            return retrying(self._apply_once, batch)
        except Exception as exc:
            if self._abandon.is_set() and is_transient(exc):
                raise BatchAbandonedError("batch abandoned (revoke or shutdown)") from exc
            raise

    def _apply_once(self, batch: PartitionBatch) -> BatchResult:
        with self._pool.connection() as conn:
            with self._lock:
                self._conn = conn
            try:
                return self._applier.apply(conn, batch)
            finally:
                with self._lock:
                    self._conn = None

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
            failing_for_s=round(cast(float, state.seconds_since_start), 1),  # set once an attempt ran
        )


class ApplyLanes:
    """The lanes of one consumer; a partition keeps its lane while it is assigned."""

    def __init__(
        self,
        count: int,
        applier: BatchApplier,
        settings: ConsumerSettings,
        pool: ConnectionPool,
        is_current: Callable[[PartitionBatch], bool],
        idle_work: Callable[[], None],
    ) -> None:
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self.lanes = [
            ApplyLane(i, applier, settings, pool, self.outcomes, is_current, idle_work if i == 0 else _nothing)
            for i in range(count)
        ]
        self._pinned: dict[TopicPartition, ApplyLane] = {}

    def start(self) -> None:
        for lane in self.lanes:
            lane.start()

    def lane_for(self, tp: TopicPartition) -> ApplyLane:
        """The partition's lane: the one with the fewest partitions when it is first seen."""
        lane = self._pinned.get(tp)
        if lane is None:
            load = {id(candidate): 0 for candidate in self.lanes}
            for pinned in self._pinned.values():
                load[id(pinned)] += 1
            lane = self._pinned[tp] = min(self.lanes, key=lambda candidate: load[id(candidate)])
        return lane

    def release(self, tps: Collection[TopicPartition]) -> None:
        """Unpin revoked partitions, so lanes stay balanced as assignments change."""
        for tp in tps:
            self._pinned.pop(tp, None)

    @property
    def retrying(self) -> bool:
        return any(lane.retrying for lane in self.lanes)

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(lane.wait_idle(max(deadline - time.monotonic(), 0.0)) for lane in self.lanes)

    def abandon(self, partitions: Collection[TopicPartition] | None, timeout_s: float) -> bool:
        """Abandon the partitions' batches (None: all) in every lane; True once none runs any more."""
        stopping = [(lane, batch) for lane in self.lanes if (batch := lane.abandon(partitions)) is not None]
        deadline = time.monotonic() + timeout_s
        return all(lane.wait_done(batch, max(deadline - time.monotonic(), 0.0)) for lane, batch in stopping)

    def stop(self) -> None:
        for lane in self.lanes:
            lane.stop()


def _nothing() -> None:
    return None


class TombstonePurge:
    """Deletes tombstones past their retention, every `tombstone_cleanup_interval_s` (a lane's idle work)."""

    def __init__(self, pool: ConnectionPool, settings: ConsumerSettings, refs: list[TableRef]) -> None:
        self._pool = pool
        self._settings = settings
        self._refs = refs
        self._next = time.monotonic() + settings.tombstone_cleanup_interval_s

    def __call__(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self._settings.tombstone_cleanup_interval_s
        try:
            purged = purge_tombstones(self._pool, self._refs, self._settings.tombstone_retention_s)
        except Exception as exc:  # noqa: BLE001 (a later round tries again; the guard stays correct meanwhile)
            log.warning("tombstone cleanup failed", error_class=type(exc).__name__, failure=classify(exc).value)
            return
        if purged:
            log.info("tombstones purged", rows=purged)


def purge_tombstones(pool: ConnectionPool, refs: list[TableRef], retention_s: float) -> int:
    """Delete tombstones older than the retention in every target's tombstone table that exists."""
    from connectors.postgres_schema import BOOKKEEPING_SCHEMA, tombstone_table_name

    purged = 0
    with pool.connection() as conn:
        for ref in refs:
            found = conn.execute(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))",
                (BOOKKEEPING_SCHEMA, tombstone_table_name(ref)),
            ).fetchone()
            if found and found[0] is not None:
                purged += conn.execute(statements.purge_tombstones(ref), (retention_s,)).rowcount
            conn.commit()
    return purged
