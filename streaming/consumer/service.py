"""`lakesync consume`: the Kafka side of the consumer service and its life cycle.

start-up    config, PostgreSQL and Kafka checked (fail fast, one line), topics and the
            lakesync schema ensured, pool opened, group joined (static membership,
            cooperative-sticky assignor), HTTP endpoints started
assign      the new partitions are paused and claimed in PostgreSQL on another thread
            (claims.py); once claimed, each is sought to its stored offset and resumed.
            The rebalance callback never waits for PostgreSQL
loop        collect a batch (count / bytes / time bound) → per partition: decode, compact,
            stamp with its claim (assignment.py) → hand to the partition's apply lane →
            after its commit, commit the offset to Kafka too
fenced      a batch PostgreSQL refused (another claim or offset) is dropped and the partition
            claimed again, if it is still ours
PostgreSQL  down: the lanes and claims retry; this thread pauses the assigned partitions and
            keeps polling, so the group keeps us; when a write succeeds, resume
revoke      cancel the statements and claims of the revoked partitions (nothing of theirs
            commits afterwards: the next owner's claim fences them), forget them
SIGTERM     finish the batches in flight within the grace (else abandon them), close the
            consumer, the pool and the endpoints; exit < 10 s
"""

from __future__ import annotations

import gc
import hashlib
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors import postgres, postgres_schema
from connectors.errors import PostgresUnavailableError, TopicError
from connectors.kafka import CHANGE_TOPIC_CONFIG, DEAD_LETTER_TOPIC_CONFIG, ensure_topics
from connectors.kafka_messages import position, topic_partition
from connectors.postgres_schema import TableRef
from lakesync.config import LakesyncSettings
from lakesync.errors import ConfigError
from lakesync.logs import correlation, get_logger
from observability.endpoints import HealthServer, Probes
from observability.kafka_offsets import OffsetReader
from observability.lag_monitor import LagMonitor
from streaming.consumer import metrics
from streaming.consumer.apply import BatchApplier, SchemaKeeper, observe
from streaming.consumer.assignment import Assignment
from streaming.consumer.batch import BatchBounds, PartitionBatch, TableTarget, collect_wait, prepare_partition
from streaming.consumer.claims import ClaimResult, PartitionClaims
from streaming.consumer.classify import is_transient
from streaming.consumer.dead_letters import DeadLetterSink
from streaming.consumer.decode import Message as DecodedMessage
from streaming.consumer.decode import TableDecoder
from streaming.consumer.errors import BatchDroppedError, BatchFencedError, ClaimAbandonedError, KafkaUnavailableError
from streaming.consumer.worker import ApplyLanes, Outcome, TombstonePurge

log = get_logger("lakesync.consumer")

# Waiting this long for a lane (without it retrying) means PostgreSQL is slow, not down: pause
# anyway, so Kafka's max.poll.interval.ms can never evict us.
_PAUSE_AFTER_S = 10.0
_CONSUME_CHUNK = 5000
_SEEK_WAIT_S = 5.0
_ALIVE_WITHIN_S = 60.0
# A revoke waits this long for the revoked partitions' statements to stop (they are cancelled).
_REVOKE_WAIT_S = 5.0

TopicPartitionKey = tuple[str, int]


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


def group_instance_id(settings: LakesyncSettings, names: Sequence[str]) -> str | None:
    """The static member id: configured, else the host (pod) name; None when turned off ("").

    A process consuming only some tables (`--table`) gets the tables' digest appended, so
    processes for different tables on one host never share an id.
    """
    configured = settings.consumer.group_instance_id
    if configured is not None:
        return configured or None
    host = socket.gethostname()
    if not names:
        return host
    digest = hashlib.sha256("\0".join(sorted(names)).encode()).hexdigest()[:8]
    return f"{host}-{digest}"


def consumer_config(settings: LakesyncSettings, instance_id: str | None) -> dict[str, Any]:
    c = settings.consumer
    config: dict[str, Any] = {
        "auto.offset.reset": "earliest",
        "queued.max.messages.kbytes": c.fetch_queue_max_kbytes,
        # librdkafka postpones a partition's next fetch by this much once the prefetch queue is
        # full (default 1000 ms): in a backlog the queue is full all the time and the thread
        # that decodes would then wait on the broker.
        "fetch.queue.backoff.ms": 20,
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": int(c.session_timeout_s * 1000),
        "enable.partition.eof": False,
        "client.id": f"lakesync-consume-{socket.gethostname()}",
        **settings.kafka.client_config(),
        # Ours alone: offsets are stored in PostgreSQL with the rows and committed to Kafka after;
        # a rebalance moves only the partitions that change hands, the others keep applying.
        "group.id": c.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "partition.assignment.strategy": "cooperative-sticky",
    }
    if instance_id:
        config["group.instance.id"] = instance_id
    return config


class ConsumerService:
    """One consumer-group member applying the chosen tables' topics to PostgreSQL."""

    def __init__(self, settings: LakesyncSettings, tables: Sequence[str] = ()) -> None:
        self.settings = settings
        self.targets = select_targets(settings, tables)
        self.decoders = {topic: TableDecoder(t.name, t.key_columns) for topic, t in self.targets.items()}
        _check_pool_size(settings)
        self.instance_id = group_instance_id(settings, tables)
        owner = f"{self.instance_id or socket.gethostname()}:{os.getpid()}"
        self.assignment = Assignment(owner)
        self._stop = threading.Event()
        self._paused = False
        # Messages read while waiting for a busy lane, for the next batch (dropped on rebalance),
        # and the bytes of their values: the read-ahead is bounded like a batch.
        self._carried: list[Message] = []
        self._carried_size = 0
        c = settings.consumer
        self._bounds = BatchBounds(c.batch_max_messages, c.batch_max_bytes, c.batch_max_wait_s, c.batch_idle_s)
        self._heartbeat = time.monotonic()
        self._consumer: Consumer | None = None
        self._lanes: ApplyLanes | None = None
        self._claims: PartitionClaims | None = None
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
        self._pool = postgres.open_pool(
            self.settings.postgres,
            name="lakesync-consume",
            session={"statement_timeout": f"{c.statement_timeout_s}s", "lock_timeout": f"{c.lock_timeout_s}s"},
        )
        with self._pool.connection() as conn, conn.transaction():
            postgres_schema.ensure_bookkeeping(conn)
        metrics.track_pool(self._pool.get_stats)
        self._start_threads()
        if c.http_port:
            self._start_http()
        # Batches hold many small objects with no cycles: collect rarely, and never the
        # long-lived start-up objects (frozen), so the collector does not rescan live batches.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        # The lanes give up the GIL at every network wait of their COPY; with the default 5 ms
        # switch interval they then wait that long for the decoding thread each time.
        sys.setswitchinterval(0.0005)
        self._consumer = Consumer(consumer_config(self.settings, self.instance_id))
        self._consumer.subscribe(
            list(self.targets), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        log.info(
            "consumer started",
            group_id=c.group_id,
            group_instance_id=self.instance_id,
            tables=[t.name for t in self.targets.values()],
            topics=list(self.targets),
            postgres=postgres.describe(self.settings.postgres),
            postgres_version=version,
            apply_parallelism=c.apply_parallelism,
            http_port=self.http_port,
        )

    def _start_threads(self) -> None:
        c = self.settings.consumer
        applier = BatchApplier(SchemaKeeper(c), self._dead_letters, c.group_id)
        refs = [t.ref for t in self.targets.values()]
        self._lanes = ApplyLanes(
            c.apply_parallelism,
            applier,
            c,
            self._pool,
            is_current=lambda batch: (
                batch.ownership is not None and self.assignment.is_current(batch.tp, batch.ownership.token)
            ),
            idle_work=TombstonePurge(self._pool, c, refs),
        )
        self._lanes.start()
        self._claims = PartitionClaims(self._pool, c, c.group_id)
        self._claims.start()

    def _shutdown(self) -> None:
        grace = self.settings.consumer.shutdown_grace_s
        started = time.monotonic()
        if self._lanes is not None:
            if not self._lanes.wait_idle(grace):
                log.warning("abandoning the batches in flight", grace_s=grace)
                self._lanes.abandon(None, 1.0)
            self._drain_outcomes(raise_errors=False)
            self._lanes.stop()
        if self._claims is not None:
            self._claims.stop()
        if self._consumer is not None:
            self._consumer.close()
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
                "partitions_assigned": lambda: len(self.assignment) > 0,
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
            return bool(conn.execute("SELECT 1").fetchone() == (1,))

    def _kafka_answers(self) -> bool:
        assert self._admin is not None
        return len(self._admin.list_topics(timeout=2.0).brokers) > 0

    # --- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            self._drain_outcomes()
            self._drain_claims()
            messages = self._collect()
            for batch in self._prepare(messages):
                self._hand_over(batch)

    def _collect(self) -> list[Message]:
        """Messages up to the batch bounds (batch.collect_wait), from partitions that are claimed."""
        c = self.settings.consumer
        consumer = self._consumer
        assert consumer is not None
        bounds = self._bounds
        opened = time.monotonic()
        messages, size, quiet = self._carried, self._carried_size, False
        self._set_carried([])
        while not self._stop.is_set():
            elapsed = time.monotonic() - opened
            wait = collect_wait(bounds, elapsed_s=elapsed, messages=len(messages), size=size, quiet=quiet)
            if wait is None:
                break
            # consume() returns when it has all it asked for or when `wait` is over.
            chunk = consumer.consume(min(c.batch_max_messages - len(messages), _CONSUME_CHUNK), wait)
            quiet = not chunk
            for message in chunk:
                error = message.error()
                if error is None:
                    messages.append(message)
                    size += len(message)  # confluent_kafka: the length of the value (0 for a tombstone)
                else:
                    _raise_if_fatal(error)
        return messages

    def _prepare(self, messages: list[Message]) -> Iterator[PartitionBatch]:
        """One batch per partition, stamped with the claim it is applied under."""
        by_partition: dict[TopicPartitionKey, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(topic_partition(message), []).append(message)
        del messages
        for tp, chunk in by_partition.items():
            if not self.assignment.is_ready(tp):
                continue  # revoked or claimed again during this poll: it will be read again
            topic = tp[0]
            # Consumed messages are what decode.Message describes (connectors/kafka_messages.py).
            consumed = cast("list[DecodedMessage]", chunk)
            batch = prepare_partition(consumed, [m.value() for m in chunk], self.targets[topic], self.decoders[topic])
            batch.ownership = self.assignment.take(tp, batch.next_offset)
            yield batch

    def _hand_over(self, batch: PartitionBatch) -> None:
        lanes = self._lanes
        assert lanes is not None and batch.ownership is not None
        lane = lanes.lane_for(batch.tp)
        waiting_since = time.monotonic()
        while not self._stop.is_set() and self.assignment.is_current(batch.tp, batch.ownership.token):
            if lane.offer(batch, 0.0):
                if self._paused:
                    self._set_paused(False)
                return
            self._drain_outcomes()
            self._drain_claims()
            self._heartbeat = time.monotonic()
            if not self._paused and (lanes.retrying or time.monotonic() - waiting_since > _PAUSE_AFTER_S):
                self._set_paused(True)
            if self._paused:
                self._poll_paused()
            elif self._may_read_ahead():
                self._poll_ahead()
            else:
                time.sleep(0.01)  # a batch read ahead already: wait for the lane, not for more

    def _may_read_ahead(self) -> bool:
        """What is read ahead of a busy lane is the next batch: it stops at the batch's bounds,
        bytes included (wide rows would otherwise pile up by the batch's message count)."""
        return not self._bounds.full(len(self._carried), self._carried_size)

    def _poll_ahead(self) -> None:
        """Serve the group (a rebalance waits for our poll) while a lane is busy; keep what comes."""
        message = self._poll_one(0.02)
        if message is not None:
            self._carried.append(message)
            self._carried_size += len(message)  # confluent_kafka: the value's length

    def _poll_one(self, timeout_s: float) -> Message | None:
        """One message, or None on a timeout or a non-fatal client event (a fatal one raises)."""
        consumer = self._consumer
        assert consumer is not None
        message = consumer.poll(timeout_s)
        if message is None:
            return None
        error = message.error()
        if error is not None:
            _raise_if_fatal(error)
            return None
        return message

    def _poll_paused(self) -> None:
        """Serve the group (heartbeats, rebalances) while paused; a stray message is sought back."""
        consumer = self._consumer
        assert consumer is not None
        message = self._poll_one(0.2)
        if message is None:
            return
        tp = TopicPartition(*position(message))
        consumer.seek(tp)
        consumer.pause([TopicPartition(*topic_partition(message))])

    def _set_paused(self, paused: bool) -> None:
        """Pause every assigned partition (PostgreSQL down or slow), or resume the claimed ones."""
        consumer = self._consumer
        assert consumer is not None
        if paused:
            partitions = consumer.assignment()
            consumer.pause(partitions)
            log.warning("partitions paused while PostgreSQL is unavailable", partitions=len(partitions))
        else:
            partitions = [TopicPartition(t, p) for t, p in self.assignment.ready()]
            consumer.resume(partitions)
            log.info("partitions resumed", partitions=len(partitions))
        self._paused = paused
        metrics.PAUSED.set(1 if paused else 0)

    # --- outcomes of the lanes and the claims ------------------------------------------------

    def _drain_outcomes(self, *, raise_errors: bool = True) -> None:
        lanes = self._lanes
        assert lanes is not None
        while True:
            try:
                outcome = lanes.outcomes.get_nowait()
            except queue.Empty:
                return
            self._settle(outcome, raise_errors=raise_errors)

    def _settle(self, outcome: Outcome, *, raise_errors: bool) -> None:
        batch, error = outcome.batch, outcome.error
        if isinstance(error, BatchDroppedError):
            self._dropped(batch, error)
            return
        if error is not None:
            if not raise_errors:
                return
            if is_transient(error):
                raise PostgresUnavailableError(
                    f"gave up after {self.settings.consumer.retry_deadline_s:.0f} s of transient errors: "
                    f"{type(error).__name__}: {str(error).strip()}"
                ) from error
            raise error
        result = outcome.result
        assert result is not None
        observe(result)
        metrics.MESSAGES.labels(batch.table.name).inc(len(batch.messages))
        self._commit_to_kafka(batch)
        stats = result.stats
        with correlation(tables=[batch.table.name], topics=[batch.topic], offsets=batch.describe_offsets()):
            log.info(
                "batch applied",
                messages=len(batch.messages),
                compacted=batch.compacted_away,
                rows_upserted=stats.upserted,
                rows_deleted=stats.deleted,
                rows_skipped_stale=stats.stale,
                dead_letters=stats.dead_letters,
                duration_ms=round(result.duration_s * 1000, 1),
            )

    def _dropped(self, batch: PartitionBatch, error: BaseException) -> None:
        """A batch that did not commit: if its claim is still ours, claim the partition again."""
        assert batch.ownership is not None
        current = self.assignment.is_current(batch.tp, batch.ownership.token)
        if isinstance(error, BatchFencedError):
            metrics.BATCHES_FENCED.labels(batch.table.name).inc()
            with correlation(tables=[batch.table.name], topics=[batch.topic], offsets=batch.describe_offsets()):
                log.warning("batch fenced, dropped", reason=str(error), claimed_again=current)
        if current:
            self._claim([batch.tp])

    def _drain_claims(self) -> None:
        claims = self._claims
        assert claims is not None
        while True:
            try:
                result = claims.results.get_nowait()
            except queue.Empty:
                return
            self._claimed(result)

    def _claimed(self, result: ClaimResult) -> None:
        """Seek each partition now claimed to its stored offset and let it be read."""
        if result.error is not None:
            if isinstance(result.error, ClaimAbandonedError):
                return
            if is_transient(result.error):
                raise PostgresUnavailableError(
                    f"could not claim partitions for {self.settings.consumer.retry_deadline_s:.0f} s: "
                    f"{type(result.error).__name__}: {str(result.error).strip()}"
                ) from result.error
            raise result.error
        assert result.offsets is not None and self._consumer is not None
        ready = [
            TopicPartition(t, p, offset) for (t, p), offset in self.assignment.claimed(result.request, result.offsets)
        ]
        unseekable = [tp for tp in ready if not self._seek(tp)]
        if unseekable:
            # Still paused and not read: claim them again rather than read from Kafka's offset.
            log.warning("partitions not seekable yet; claimed again", partitions=[str(tp) for tp in unseekable])
            self._claim([(tp.topic, tp.partition) for tp in unseekable])
            ready = [tp for tp in ready if tp not in unseekable]
        if not ready:
            return
        if not self._paused:
            self._consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in ready])
        self._mirror_to_kafka(ready)
        log.info("partitions claimed", partitions=sorted(f"{tp.topic}:{tp.partition}@{tp.offset}" for tp in ready))

    def _seek(self, tp: TopicPartition) -> bool:
        """Seek to the claimed offset; False if the partition never became seekable.

        Right after an assignment librdkafka is still fetching the partition's committed offset
        and refuses a seek with _STATE ("Erroneous state") for a few milliseconds: wait it out.
        """
        assert self._consumer is not None
        deadline = time.monotonic() + _SEEK_WAIT_S
        while True:
            try:
                self._consumer.seek(tp)
                return True
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._STATE:
                    raise
                if time.monotonic() > deadline:
                    return False
            time.sleep(0.05)

    def _commit_to_kafka(self, batch: PartitionBatch) -> None:
        """Mirror the offset PostgreSQL now holds into Kafka, for lag tools (best effort)."""
        if self._consumer is None or batch.tp not in self.assignment:
            return
        try:
            self._consumer.commit(offsets=[TopicPartition(*batch.tp, batch.next_offset)], asynchronous=True)
        except KafkaException as exc:
            log.warning("offset commit to Kafka failed (PostgreSQL holds them)", error=str(exc))

    def _mirror_to_kafka(self, partitions: list[TopicPartition]) -> None:
        """Commit the offsets PostgreSQL holds to Kafka as well, so lag tools read the truth.

        Kafka's copy can be behind after a crash between the PostgreSQL commit and the Kafka one,
        and then stays behind while the topic is idle: lag would show records long applied.
        """
        offsets = [TopicPartition(p.topic, p.partition, p.offset) for p in partitions if p.offset > 0]
        if not offsets or self._consumer is None:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.warning("offset commit to Kafka failed (PostgreSQL holds them)", error=str(exc))

    # --- rebalance callbacks (called from within consume/poll, on this thread) ---------------

    def _set_carried(self, messages: list[Message]) -> None:
        self._carried = messages
        self._carried_size = sum(len(m) for m in messages)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._set_carried([])
        consumer.incremental_assign(partitions)
        consumer.pause(partitions)  # until claimed: they are read from the offset PostgreSQL holds
        self._claim([(p.topic, p.partition) for p in partitions])
        metrics.ASSIGNED_PARTITIONS.set(len(self.assignment))
        log.info("partitions assigned", partitions=sorted(f"{p.topic}:{p.partition}" for p in partitions))

    def _claim(self, tps: list[TopicPartitionKey]) -> None:
        claims, consumer = self._claims, self._consumer
        assert claims is not None
        self._set_carried([m for m in self._carried if (m.topic(), m.partition()) not in tps])
        if consumer is not None:
            consumer.pause([TopicPartition(t, p) for t, p in tps])
        for request in self.assignment.claim(tps):
            claims.request(request)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._set_carried([])
        tps = {(p.topic, p.partition) for p in partitions}
        tokens = self.assignment.revoke(tps)
        if self._claims is not None:
            self._claims.cancel(tokens)
        if self._lanes is not None:
            if not self._lanes.abandon(tps, _REVOKE_WAIT_S):
                log.warning("a revoked partition's statement did not stop in time (its claim is gone)")
            self._lanes.release(tps)
            self._drain_outcomes()
        consumer.incremental_unassign(partitions)
        metrics.ASSIGNED_PARTITIONS.set(len(self.assignment))
        log.info("partitions revoked", partitions=sorted(f"{t}:{p}" for t, p in tps))


def _check_pool_size(settings: LakesyncSettings) -> None:
    wanted = settings.consumer.apply_parallelism + 1
    if settings.postgres.pool_max_size < wanted:
        raise ConfigError(
            f"postgres.pool_max_size ({settings.postgres.pool_max_size}) must be at least "
            f"consumer.apply_parallelism + 1 ({wanted}): each lane holds a connection, claims need one more"
        )


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
