"""Classify, publish and record one Spark partition of a micro-batch, on the executor.

Input rows (Arrow batches from `mapInArrow`), one per key after the collapse:
`change_type, key, value, version, problem, row_hash, group_rows, commit_micros`. For each
Arrow batch the task looks up the state of the batch's keys (one indexed query), classifies every
change against it (changes/classify.py), produces the messages (an upsert, or a delete followed
by its tombstone, on the table's topic; a quarantined row on the dead-letter topic) and keeps
the state changes. Every `settle_rows` changes it waits for Kafka to acknowledge everything
produced, then writes the state changes and commits: the state never holds a change Kafka does
not. Any delivery failure fails the task, hence the batch, which is replayed after a restart.

Reconcile repairs (`repair=True`) and rebuild quarantines (`classify_changes=False`) go through
the same path: their rows carry the action to take instead of a change type.

The task yields one row, its tally (JSON): rows per action, the group rows the collapse merged,
versions and commit time seen, and the offset span written per Kafka partition — the driver
sums the tallies of the batch's tasks (a few rows, never the data).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from changes.classify import ACTIONS, PUBLISHED, StateChange, StateEntry, classify, repair_state
from changes.dead_letter import DeadLetter
from changes.envelope import ENVELOPE_VERSION, HEADER_ENVELOPE, HEADER_TABLE, tombstone_headers
from connectors.kafka_messages import produced_headers
from streaming.publisher.errors import PublishError
from streaming.publisher.state_store import StateTable, lookup, record

TALLY_SCHEMA = "tally string"
# Phases of a task: state lookups, classifying and producing, waiting for Kafka's acks, state writes.
PHASES = ("lookup_s", "produce_s", "flush_s", "record_s")
INPUT_COLUMNS = ("change_type", "key", "value", "version", "problem", "row_hash", "group_rows", "commit_micros")
_FLUSH_TIMEOUT_S = 120.0

OffsetSpans = dict[int, tuple[int, int]]
# (topic, key, value, headers) of one Kafka message.
Message = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]


@dataclass
class Tally:
    """What one task (or, summed, one batch) did; every input row is in exactly one action."""

    actions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))
    group_rows: int = 0
    min_version: int | None = None
    max_version: int | None = None
    max_commit_micros: int | None = None
    spans: OffsetSpans = field(default_factory=dict)
    # Where the tasks' time went, summed over them: the batch's profile in its log line.
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))

    def count(self, action: str, group_rows: int, version: int, commit_micros: int | None) -> None:
        self.actions[action] += 1
        self.group_rows += group_rows
        self.min_version = version if self.min_version is None else min(self.min_version, version)
        self.max_version = version if self.max_version is None else max(self.max_version, version)
        if commit_micros is not None:
            known = self.max_commit_micros
            self.max_commit_micros = commit_micros if known is None else max(known, commit_micros)

    def requarantine(self) -> None:
        """A published upsert turned out too large for Kafka: it counts as quarantined instead."""
        self.actions["upsert"] -= 1
        self.actions["quarantine"] += 1

    def timed(self, phase: str, started: float) -> None:
        self.seconds[phase] += time.monotonic() - started

    def delivered(self, partition: int, offset: int) -> None:
        known = self.spans.get(partition)
        self.spans[partition] = (offset, offset) if known is None else (min(known[0], offset), max(known[1], offset))

    def add(self, other: Tally) -> None:
        """Merge another task's tally (offset spans by min/max)."""
        for action, n in other.actions.items():
            self.actions[action] += n
        self.group_rows += other.group_rows
        for version in (other.min_version, other.max_version):
            if version is not None:
                self.min_version = version if self.min_version is None else min(self.min_version, version)
                self.max_version = version if self.max_version is None else max(self.max_version, version)
        if other.max_commit_micros is not None:
            known = self.max_commit_micros
            self.max_commit_micros = other.max_commit_micros if known is None else max(known, other.max_commit_micros)
        for partition, (first, last) in other.spans.items():
            self.delivered(partition, first)
            self.delivered(partition, last)
        for phase, seconds in other.seconds.items():
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "spans": {str(p): list(s) for p, s in self.spans.items()}})

    @classmethod
    def from_json(cls, text: str) -> Tally:
        raw = json.loads(text)
        raw["spans"] = {int(p): (s[0], s[1]) for p, s in raw["spans"].items()}
        return cls(**raw)


def describe_spans(topic: str, spans: OffsetSpans) -> str:
    """`topic[partition:first-last,...]`, the consumer's format for its batch lines."""
    ranges = ",".join(f"{p}:{first}-{last}" for p, (first, last) in sorted(spans.items()))
    return f"{topic}[{ranges}]" if spans else ""


@dataclass(frozen=True)
class PartitionPublisher:
    """The mapInArrow function of one table's publishing job (see the module docstring).

    `state`: the state table to classify against and record into, with the psycopg connection
    arguments to reach it; None publishes the rows' own actions without a state (a rebuild's
    quarantined rows, or repairs before any stream ran).
    """

    producer_config: dict[str, str]
    topic: str
    dead_letter_topic: str
    table: str
    key_types: Sequence[str]
    state: StateTable | None = None
    connection: dict[str, Any] | None = None
    # Which lakesync step set quarantined rows aside (the dead-letter stage header).
    stage: str = "stream"
    # Reconcile repairs: recorded at the repair rank; their tombstones say so, like their envelopes.
    repair: bool = False
    # Rows carry a change type to classify (the stream) or the action itself (repairs, rebuild).
    classify_changes: bool = True
    settle_rows: int = 50_000
    # How long a task rides out a PostgreSQL outage before it fails the batch.
    retry_deadline_s: float = 300.0

    def __call__(self, batches: Iterable[Any]) -> Iterator[Any]:
        import pyarrow as pa

        with ExitStack() as stack:
            session = None
            if self.state is not None:
                session = StateSession(self.state, self.connection or {}, self.retry_deadline_s)
                stack.callback(session.close)
            task = _Task(self, session)
            for batch in batches:
                task.publish(batch.to_pydict())
                if len(task.pending) >= self.settle_rows:
                    task.settle()
            task.settle()
        yield pa.RecordBatch.from_pydict({"tally": [task.tally.to_json()]})

    def decide(
        self, change_type: str, key: str | None, version: int, problem: str | None, row_hash: int | None, known: Any
    ) -> tuple[str, StateChange]:
        """The row's action and state change: classified against the state, or given by the row."""
        if self.classify_changes:
            return classify(change_type, version, row_hash, problem, known.get(key) if key is not None else None)
        if change_type == "quarantine" or problem is not None:
            return "quarantine", None
        return change_type, repair_state(change_type, version, row_hash) if self.repair else None

    def oversized_letter(self, key: bytes, size: int, limit: str, version: int | None) -> Message:
        """The dead-letter record of a change Kafka cannot hold: its key and sizes, not its value."""
        letter = DeadLetter(
            stage=self.stage,
            error_class="oversized_row",
            message=(
                f"the change's message is {size} bytes, over {limit}: not published; raise the limit "
                "(the topic's max.message.bytes and kafka.client_properties message.max.bytes) and "
                "publish the row again (a later change of it, or lakesync reconcile --repair)"
            ),
            table=self.table,
            source_version=version,
        )
        return self.dead_letter_topic, key, None, letter.headers()

    def messages(self, action: str, key: str | None, value: bytes, version: int, problem: str | None) -> list[Message]:
        """What one published action sends: an upsert; a delete and its tombstone; a dead letter."""
        encoded_key = key.encode() if key is not None else None
        if action == "upsert":
            return [(self.topic, encoded_key, value, self._envelope_headers())]
        if action == "delete":
            tombstone = tombstone_headers(self.table, version, self.key_types, repair=self.repair)
            return [
                (self.topic, encoded_key, value, self._envelope_headers()),
                (self.topic, encoded_key, None, tombstone),
            ]
        reason = problem or "unknown"
        letter = DeadLetter(
            stage=self.stage,
            error_class=reason.split(":", 1)[0],
            message=f"row cannot be synced: {reason}",
            table=self.table,
            source_version=version,
        )
        return [(self.dead_letter_topic, encoded_key, value, letter.headers())]

    def _envelope_headers(self) -> list[tuple[str, bytes]]:
        return [(HEADER_ENVELOPE, str(ENVELOPE_VERSION).encode()), (HEADER_TABLE, self.table.encode())]


class _Task:
    """One Spark task of a publishing job: its producer, state session, pending state changes, tally.

    A change whose message Kafka refuses as too large (librdkafka's `message.max.bytes` at
    produce time, or the topic's `max.message.bytes` at the broker) would fail every replay of
    the batch; it is quarantined instead: a dead-letter record with its key and size, no state
    change, counted as quarantined. Any other delivery failure fails the task.
    """

    def __init__(self, publisher: PartitionPublisher, session: StateSession | None) -> None:
        self.publisher = publisher
        self.session = session
        self.tally = Tally()
        self.pending: list[tuple[str, StateChange]] = []
        self.failures: list[str] = []
        self.oversized: dict[bytes, tuple[int, str]] = {}
        self.versions: dict[bytes, int] = {}
        self.producer = shared_producer(publisher.producer_config)
        self._message_limit = f"message.max.bytes ({publisher.producer_config.get('message.max.bytes', 1000000)})"

    def publish(self, columns: dict[str, list[Any]]) -> None:
        """Classify and produce one Arrow batch of rows; keep their state changes pending."""
        publisher, started = self.publisher, time.monotonic()
        known: dict[str, StateEntry] = {}
        if self.session is not None and publisher.classify_changes:
            known = self.session.lookup([k for k in columns["key"] if k is not None])
        self.tally.timed("lookup_s", started)
        started = time.monotonic()
        for change_type, key, value, version, problem, row_hash, group_rows, commit_micros in zip(
            *(columns[name] for name in INPUT_COLUMNS), strict=True
        ):
            action, state_change = publisher.decide(change_type, key, version, problem, row_hash, known)
            self.tally.count(action, group_rows, version, commit_micros)
            if action in PUBLISHED:
                for message in publisher.messages(action, key, value, version, problem):
                    self._produce(message, version)
            if state_change is not None and key is not None:
                self.pending.append((key, state_change))
        self.tally.timed("produce_s", started)

    def settle(self) -> None:
        """Wait until Kafka acknowledged everything produced, then record the state changes."""
        started = time.monotonic()
        remaining = self.producer.flush(_FLUSH_TIMEOUT_S)
        if self.oversized and not remaining:
            remaining = self._quarantine_oversized()
        self.tally.timed("flush_s", started)
        if remaining or self.failures:
            raise PublishError(
                f"table {self.publisher.table!r}: {remaining} message(s) unacknowledged, "
                f"{len(self.failures)} failed (first: {self.failures[:1]})"
            )
        started = time.monotonic()
        if self.session is not None and self.pending:
            self.session.record(self.pending)
        self.tally.timed("record_s", started)
        self.pending.clear()
        self.versions.clear()

    def _produce(self, message: Message, version: int) -> None:
        from confluent_kafka import KafkaError, KafkaException

        topic, key, value, headers = message
        if key is not None and topic == self.publisher.topic:
            self.versions[key] = version
        while True:
            try:
                self.producer.produce(
                    topic, key=key, value=value, headers=produced_headers(headers), on_delivery=self._delivered
                )
                self.producer.poll(0)
                return
            except BufferError:
                # The local queue is full: let librdkafka drain it, then try again.
                self.producer.poll(0.5)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE or key is None:
                    raise
                if topic != self.publisher.topic:  # a quarantined row too large to keep: its key and why
                    value = None
                    continue
                self.oversized[key] = (len(value or b""), self._message_limit)
                return

    def _delivered(self, err: Any, msg: Any) -> None:
        from confluent_kafka import KafkaError

        if err is None:
            if msg.topic() == self.publisher.topic:
                self.tally.delivered(msg.partition(), msg.offset())
        elif err.code() == KafkaError.MSG_SIZE_TOO_LARGE and msg.topic() == self.publisher.topic and msg.key():
            self.oversized[msg.key()] = (len(msg.value() or b""), "the topic's max.message.bytes")
        else:
            self.failures.append(str(err))

    def _quarantine_oversized(self) -> int:
        """Dead-letter the oversized changes, drop their state changes; messages still unacknowledged."""
        keys = {key.decode() for key in self.oversized}
        self.pending = [(key, change) for key, change in self.pending if key not in keys]
        for key, (size, limit) in self.oversized.items():
            version = self.versions.get(key, -1)
            self._produce(self.publisher.oversized_letter(key, size, limit, version), version)
            self.tally.requarantine()
        self.oversized.clear()
        return int(self.producer.flush(_FLUSH_TIMEOUT_S))


class StateSession:
    """A task's connection to the stream's state, reconnecting through PostgreSQL outages.

    Lookups and writes are retried on connection-level errors (psycopg.OperationalError) with
    exponential backoff and jitter until `deadline_s`; a write that failed mid-way rolled back and
    is repeated whole (its statements are guarded, so repeating them is harmless).
    """

    def __init__(self, table: StateTable, connection: dict[str, Any], deadline_s: float) -> None:
        self._table = table
        self._connection = connection
        self._deadline_s = deadline_s
        self._conn: Any = None

    def lookup(self, keys: list[str]) -> dict[str, StateEntry]:
        found: dict[str, StateEntry] = self._retrying(lambda conn: lookup(conn, self._table, keys))
        return found

    def record(self, changes: list[tuple[str, StateChange]]) -> None:
        def write(conn: Any) -> None:
            record(conn, self._table, changes)
            conn.commit()

        self._retrying(write)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _retrying(self, work: Callable[[Any], Any]) -> Any:
        import psycopg
        import tenacity

        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(psycopg.OperationalError),
            wait=tenacity.wait_exponential_jitter(initial=0.2, max=10.0),
            stop=tenacity.stop_after_delay(self._deadline_s),
            reraise=True,
        ):
            with attempt:
                try:
                    return work(self._connected())
                except psycopg.OperationalError:
                    self.close()  # the next attempt reconnects
                    raise
        return None

    def _connected(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(**self._connection)
        return self._conn


# One producer per configuration in each Python worker process, reused by the tasks it runs.
_PRODUCERS: dict[tuple[tuple[str, str], ...], Any] = {}


def shared_producer(config: dict[str, Any]) -> Any:
    """The worker's producer for `config`, created on first use.

    A producer per task would leave one behind per micro-batch (its threads and broker
    connections live until the garbage collector finds it) and pay its start-up every batch.
    Tasks of a worker run one at a time and each flushes before it ends.
    """
    from confluent_kafka import Producer

    key = tuple(sorted((name, str(value)) for name, value in config.items() if name != "logger"))
    producer = _PRODUCERS.get(key)
    if producer is None:
        producer = _PRODUCERS[key] = Producer(config)
    return producer


def sum_tallies(rows: Iterable[Any]) -> Tally:
    """The batch's tally from its tasks' rows (one per task)."""
    total = Tally()
    for row in rows:
        total.add(Tally.from_json(row["tally"]))
    return total
