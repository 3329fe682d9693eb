"""`lakesync consume`: the Kafka side of the consumer service and its life cycle.

start-up    config, PostgreSQL and Kafka checked (fail fast, one line), topics and the
            lakesync schema ensured, pool opened, group joined, HTTP endpoints started
loop        collect a batch (count / bytes / time bound) → prepare (decode, compact) →
            hand to the apply thread → after its commit, commit the offsets to Kafka too
PostgreSQL  down: the apply thread retries; this thread pauses the assigned partitions
            and keeps polling, so the group keeps us; when a write succeeds, resume
rebalance   on revoke: abandon what is in flight (its offsets were not stored);
            on assign: seek every partition to the offset stored in PostgreSQL
SIGTERM     finish the batch in flight within the grace (else abandon it), close the
            consumer (leave the group at once), the pool and the endpoints; exit < 10 s
"""

from __future__ import annotations

import gc
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors import postgres, postgres_schema
from connectors.kafka import CHANGE_TOPIC_CONFIG, DEAD_LETTER_TOPIC_CONFIG, TopicError, ensure_topics
from connectors.kafka_offsets import OffsetReader
from connectors.postgres_schema import TableRef
from lakesync.config import LakesyncSettings
from lakesync.errors import ConfigError
from lakesync.logs import correlation, get_logger
from observability.endpoints import HealthServer, Probes
from observability.lag_monitor import LagMonitor
from streaming.consumer import metrics, statements
from streaming.consumer.apply import BatchApplier, SchemaKeeper, observe
from streaming.consumer.batch import PreparedBatch, TableTarget, prepare_batch
from streaming.consumer.classify import is_transient
from streaming.consumer.dead_letters import DeadLetterSink
from streaming.consumer.decode import TableDecoder
from streaming.consumer.errors import BatchAbandonedError, KafkaUnavailableError
from streaming.consumer.worker import ApplyWorker, Outcome

log = get_logger("lakesync.consumer")

# Waiting this long for the apply thread (without it retrying) means PostgreSQL is slow, not
# down: pause anyway, so Kafka's max.poll.interval.ms can never evict us.
_PAUSE_AFTER_S = 10.0
_CONSUME_CHUNK = 5000
_ALIVE_WITHIN_S = 60.0


def select_targets(settings: LakesyncSettings, names: Sequence[str]) -> dict[str, TableTarget]:
    """topic → target for the chosen tables (all configured ones when `names` is empty)."""
    mappings = [settings.table(name) for name in names] if names else list(settings.tables)
    if not mappings:
        raise ConfigError("tables: no table configured; add a [[tables]] entry to consume")
    targets: dict[str, TableTarget] = {}
    for m in mappings:
        if m.topic_name in targets:
            raise ConfigError(f"tables: {targets[m.topic_name].name} and {m.name} share topic {m.topic_name}")
        targets[m.topic_name] = TableTarget(
            m.name, m.topic_name, TableRef(m.target_schema, m.target_table), tuple(m.key_columns)
        )
    return targets


def consumer_config(settings: LakesyncSettings) -> dict[str, Any]:
    c = settings.consumer
    return {
        "auto.offset.reset": "earliest",
        "queued.max.messages.kbytes": c.fetch_queue_max_kbytes,
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": int(c.session_timeout_s * 1000),
        "enable.partition.eof": False,
        "client.id": f"lakesync-consume-{socket.gethostname()}",
        **settings.kafka.client_config(),
        # Ours alone: offsets are stored in PostgreSQL with the rows and committed to Kafka after.
        "group.id": c.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }


class ConsumerService:
    """One consumer-group member applying the chosen tables' topics to PostgreSQL."""

    def __init__(self, settings: LakesyncSettings, tables: Sequence[str] = ()) -> None:
        self.settings = settings
        self.targets = select_targets(settings, tables)
        self.decoders = {topic: TableDecoder(t.name, t.key_columns) for topic, t in self.targets.items()}
        self._stop = threading.Event()
        self._generation = 0
        self._assigned: set[tuple[str, int]] = set()
        self._paused = False
        self._heartbeat = time.monotonic()
        self._consumer: Consumer | None = None
        self._worker: ApplyWorker | None = None
        self._pool: Any = None
        self._http: HealthServer | None = None
        self._lag: LagMonitor | None = None
        self._dead_letters = DeadLetterSink(settings.kafka)
        self._admin: AdminClient | None = None
        self.http_port: int | None = None
        self.started = threading.Event()

    # --- life cycle -------------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> None:
        """Start, consume until stopped (signal or stop()), shut down cleanly. Raises on failure."""
        if handle_signals:
            self._install_signal_handlers()
        try:
            self._start()
            self.started.set()
            self._loop()
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    def _start(self) -> None:
        c, kafka = self.settings.consumer, self.settings.kafka
        version = postgres.check_reachable(self.settings.postgres)
        self._admin = AdminClient(kafka.client_config())
        _check_kafka(self._admin, kafka.bootstrap_servers)
        try:
            ensure_topics(kafka, list(self.targets), config=CHANGE_TOPIC_CONFIG)
            ensure_topics(kafka, [kafka.dead_letter_topic], config=DEAD_LETTER_TOPIC_CONFIG)
        except TopicError as exc:
            raise KafkaUnavailableError(str(exc)) from None
        self._pool = postgres.open_pool(self.settings.postgres, name="lakesync-consume")
        with self._pool.connection() as conn, conn.transaction():
            postgres_schema.ensure_bookkeeping(conn)
        metrics.track_pool(self._pool.get_stats)
        applier = BatchApplier(self._pool, SchemaKeeper(c), self._dead_letters, c.group_id)
        refs = [t.ref for t in self.targets.values()]
        self._worker = ApplyWorker(applier, c, self._pool, refs)
        self._worker.start()
        if c.http_port:
            self._start_http()
        # Batches hold millions of small tuples with no cycles: collect rarely, and never the
        # long-lived start-up objects (frozen), so the collector does not rescan live batches.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        # The apply thread gives up the GIL at every network wait of its COPY; with the default
        # 5 ms switch interval it then waits that long for the decoding thread each time.
        sys.setswitchinterval(0.0005)
        self._consumer = Consumer(consumer_config(self.settings))
        self._consumer.subscribe(
            list(self.targets), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        log.info(
            "consumer started",
            group_id=c.group_id,
            tables=[t.name for t in self.targets.values()],
            topics=list(self.targets),
            postgres=postgres.describe(self.settings.postgres),
            postgres_version=version,
            http_port=self.http_port,
        )

    def _shutdown(self) -> None:
        grace = self.settings.consumer.shutdown_grace_s
        started = time.monotonic()
        if self._worker is not None:
            finished = self._worker.wait_idle(grace)
            if not finished:
                log.warning("abandoning the batch in flight", grace_s=grace)
                self._worker.abandon(1.0)
            self._drain_outcomes(raise_errors=False)
            self._worker.stop()
        if self._consumer is not None:
            self._consumer.close()  # leaves the group now: partitions move without a session timeout
            self._consumer = None
        self._dead_letters.close()
        if self._pool is not None:
            self._pool.close(timeout=1.0)
        if self._http is not None:
            self._http.stop()
        if self._lag is not None:
            self._lag.stop()
        if self.started.is_set():  # a failed start-up says so in one line, from the CLI
            log.info("consumer stopped", shutdown_s=round(time.monotonic() - started, 2))

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received, stopping", signal=signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _start_http(self) -> None:
        c = self.settings.consumer
        probes = Probes(
            alive=lambda: time.monotonic() - self._heartbeat < _ALIVE_WITHIN_S,
            readiness={
                "postgres": self._postgres_answers,
                "kafka": self._kafka_answers,
                "partitions_assigned": lambda: bool(self._assigned),
            },
        )
        # The group's lag as Kafka sees it (all partitions of our topics, whoever owns them).
        tables = {topic: target.name for topic, target in self.targets.items()}
        self._lag = LagMonitor(
            OffsetReader(self.settings.kafka),
            c.group_id,
            tables,
            self.settings.lag,
            dead_letter_topic=self.settings.kafka.dead_letter_topic,
        )
        self._http = HealthServer(c.http_host, c.http_port, probes, routes=self._lag.routes())
        self._http.start()
        self._lag.start()
        self.http_port = self._http.port

    def _postgres_answers(self) -> bool:
        with self._pool.connection(timeout=2.0) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def _kafka_answers(self) -> bool:
        assert self._admin is not None
        return len(self._admin.list_topics(timeout=2.0).brokers) > 0

    # --- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            self._drain_outcomes()
            messages, generation = self._collect()
            if not messages:
                continue
            batch = prepare_batch(messages, self.targets, self.decoders, generation=generation)
            del messages
            self._hand_over(batch)

    def _collect(self) -> tuple[list[Message], int]:
        """Messages up to the batch bounds, and the assignment generation they belong to.

        A rebalance inside consume() re-seeks every partition to its stored offset, so what
        earlier chunks returned will come again and is dropped. The chunk of the rebalance is
        kept (it may hold messages delivered after the new assignment, which must not be lost),
        minus partitions no longer ours; a message in it that comes again is applied twice,
        which the version guard makes harmless.
        """
        c = self.settings.consumer
        consumer = self._consumer
        assert consumer is not None
        deadline = time.monotonic() + c.batch_max_wait_s
        generation = self._generation
        messages: list[Message] = []
        size = 0
        while len(messages) < c.batch_max_messages and size < c.batch_max_bytes and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            chunk = consumer.consume(min(c.batch_max_messages - len(messages), _CONSUME_CHUNK), remaining)
            if generation != self._generation:
                generation = self._generation
                messages.clear()
                size = 0
                chunk = [m for m in chunk if (m.topic(), m.partition()) in self._assigned]
            for message in chunk:
                error = message.error()
                if error is None:
                    messages.append(message)
                    value = message.value()
                    size += len(value) if value is not None else 0
                else:
                    _raise_if_fatal(error)
        return messages, generation

    def _hand_over(self, batch: PreparedBatch) -> None:
        worker = self._worker
        assert worker is not None
        waiting_since = time.monotonic()
        while not self._stop.is_set() and batch.generation == self._generation:
            if worker.offer(batch, 0.05):
                if self._paused:
                    self._set_paused(False)
                return
            self._drain_outcomes()
            self._heartbeat = time.monotonic()
            if not self._paused and (worker.retrying or time.monotonic() - waiting_since > _PAUSE_AFTER_S):
                self._set_paused(True)
            if self._paused:
                self._poll_paused()

    def _poll_paused(self) -> None:
        """Serve the group (heartbeats, rebalances) while paused; a stray message is sought back."""
        consumer = self._consumer
        assert consumer is not None
        message = consumer.poll(0.2)
        if message is None:
            return
        if message.error() is not None:
            _raise_if_fatal(message.error())
            return
        tp = TopicPartition(message.topic(), message.partition(), message.offset())
        consumer.seek(tp)
        consumer.pause([TopicPartition(message.topic(), message.partition())])

    def _set_paused(self, paused: bool) -> None:
        consumer = self._consumer
        assert consumer is not None
        partitions = consumer.assignment()
        if paused:
            consumer.pause(partitions)
            log.warning("partitions paused while PostgreSQL is unavailable", partitions=len(partitions))
        else:
            consumer.resume(partitions)
            log.info("partitions resumed", partitions=len(partitions))
        self._paused = paused
        metrics.PAUSED.set(1 if paused else 0)

    def _drain_outcomes(self, *, raise_errors: bool = True) -> None:
        worker = self._worker
        assert worker is not None
        while True:
            try:
                outcome = worker.outcomes.get_nowait()
            except queue.Empty:
                return
            self._settle(outcome, raise_errors=raise_errors)

    def _settle(self, outcome: Outcome, *, raise_errors: bool) -> None:
        batch = outcome.batch
        if outcome.error is not None:
            if isinstance(outcome.error, BatchAbandonedError) or not raise_errors:
                return
            if is_transient(outcome.error):
                raise postgres.PostgresUnavailableError(
                    f"gave up after {self.settings.consumer.retry_deadline_s:.0f} s of transient errors: "
                    f"{type(outcome.error).__name__}: {str(outcome.error).strip()}"
                ) from outcome.error
            raise outcome.error
        result = outcome.result
        assert result is not None
        observe(result)
        for table, count in batch.messages_by_table.items():
            metrics.MESSAGES.labels(table).inc(count)
        self._commit_to_kafka(batch)
        with correlation(tables=batch.tables, topics=batch.topics, offsets=batch.describe_offsets()):
            log.info(
                "batch applied",
                messages=batch.messages,
                compacted=batch.compacted_away,
                rows_upserted=result.total("upserted"),
                rows_deleted=result.total("deleted"),
                rows_skipped_stale=result.total("stale"),
                dead_letters=result.total("dead_letters"),
                duration_ms=round(result.duration_s * 1000, 1),
            )

    def _commit_to_kafka(self, batch: PreparedBatch) -> None:
        """Mirror the offsets PostgreSQL now holds into Kafka, for lag tools (best effort)."""
        if self._consumer is None:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets.items() if (t, p) in self._assigned]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.warning("offset commit to Kafka failed (PostgreSQL holds them)", error=str(exc))

    # --- rebalance callbacks (called from within consume/poll, on this thread) ---------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self._stored_offsets([p.topic for p in partitions])
        for tp in partitions:
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        self._mirror_to_kafka(consumer, partitions)
        if self._paused:
            consumer.pause(partitions)
        self._assigned = {(p.topic, p.partition) for p in partitions}
        metrics.ASSIGNED_PARTITIONS.set(len(self._assigned))
        log.info("partitions assigned", partitions=sorted(f"{p.topic}:{p.partition}@{p.offset}" for p in partitions))

    def _mirror_to_kafka(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit the offsets PostgreSQL holds to Kafka as well, so lag tools read the truth.

        Kafka's copy can be behind after a crash between the PostgreSQL commit and the Kafka one,
        and then stays behind while the topic is idle: lag would show records long applied.
        """
        offsets = [TopicPartition(p.topic, p.partition, p.offset) for p in partitions if p.offset >= 0]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.warning("offset commit to Kafka failed (PostgreSQL holds them)", error=str(exc))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._generation += 1
        worker = self._worker
        if worker is not None and not worker.abandon(max(self.settings.postgres.pool_timeout_s, 10.0)):
            log.warning("the batch in flight did not finish before the rebalance")
        if worker is not None:
            self._drain_outcomes(raise_errors=False)
        self._assigned = set()
        metrics.ASSIGNED_PARTITIONS.set(0)
        log.info("partitions revoked", partitions=len(partitions))

    def _stored_offsets(self, topics: list[str]) -> dict[tuple[str, int], int]:
        """Offsets stored with the rows, retried like a batch (the rebalance waits for them)."""
        import tenacity

        c = self.settings.consumer

        def read() -> dict[tuple[str, int], int]:
            with self._pool.connection() as conn:
                rows = conn.execute(*statements.load_offsets(c.group_id, sorted(set(topics)))).fetchall()
            return {(topic, partition): offset for topic, partition, offset in rows}

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_exponential_jitter(
                multiplier=c.retry_initial_backoff_s, max=c.retry_max_backoff_s, jitter=c.retry_initial_backoff_s
            ),
            stop=tenacity.stop_after_delay(c.retry_deadline_s) | tenacity.stop_when_event_set(self._stop),
            reraise=True,
        )
        return retrying(read)


def _check_kafka(admin: AdminClient, bootstrap: str) -> None:
    try:
        metadata = admin.list_topics(timeout=10)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"Kafka at {bootstrap} is unreachable: {exc.args[0].str()}") from None
    if not metadata.brokers:
        raise KafkaUnavailableError(f"Kafka at {bootstrap} answered without brokers")


def _raise_if_fatal(error: KafkaError) -> None:
    if error.fatal():
        raise KafkaException(error)
    log.warning("kafka error", code=error.name(), error=error.str())
