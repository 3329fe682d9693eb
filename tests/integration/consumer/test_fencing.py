"""Fencing: a batch commits only under the claim and at the offset PostgreSQL holds for its partition."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from connectors.consumer_position import applied_offsets
from connectors.postgres_schema import TableRef
from lakesync.config import ConsumerSettings, LakesyncSettings
from streaming.consumer import statements
from streaming.consumer.apply import BatchApplier, SchemaKeeper
from streaming.consumer.batch import Ownership, PartitionBatch, TableTarget, prepare_partition
from streaming.consumer.dead_letters import DeadLetterSink
from streaming.consumer.decode import Message as DecodedMessage
from streaming.consumer.decode import TableDecoder
from streaming.consumer.errors import BatchFencedError
from tests.support.consumer_run import run_until_caught_up, running, wait_caught_up
from tests.support.consumer_topics import Message, delete, make_settings, produce, rows, upsert
from tests.support.wait import holds_for, wait_until

pytestmark = pytest.mark.integration

HOLD_KEY = 4242  # the advisory lock a test takes to hold every write to the target inside PostgreSQL


@dataclass
class Record:
    """A Kafka message as the decoder reads it, for batches built by hand."""

    k: bytes | None
    v: bytes | None
    h: list[tuple[str, bytes]]
    t: str
    p: int
    o: int

    def key(self) -> bytes | None:
        return self.k

    def value(self) -> bytes | None:
        return self.v

    def headers(self) -> list[tuple[str, bytes]]:
        return self.h

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def connect(settings: LakesyncSettings, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(**settings.postgres.connection_kwargs(), **kwargs)


def install_audit(settings: LakesyncSettings, table: str) -> None:
    """Every write to the target is logged (key, version, op); every write first waits on HOLD_KEY."""
    target = sql.Identifier("public", table)
    audit = sql.Identifier("public", f"{table}_audit")
    with connect(settings, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (n bigserial, id bigint, version bigint, op text)").format(audit))
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " PERFORM pg_advisory_xact_lock_shared({hold});"
                " IF TG_OP = 'DELETE' THEN INSERT INTO {audit} (id, version, op) VALUES (OLD.id, OLD._lakesync_version, 'D');"
                " ELSE INSERT INTO {audit} (id, version, op) VALUES (NEW.id, NEW._lakesync_version, left(TG_OP, 1)); END IF;"
                " RETURN NULL; END $$"
            ).format(fn=sql.Identifier("public", f"{table}_audit_fn"), hold=sql.Literal(HOLD_KEY), audit=audit)
        )
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(target, sql.Identifier("public", f"{table}_audit_fn"))
        )


@contextmanager
def writes_held(settings: LakesyncSettings) -> Iterator[psycopg.Connection]:
    """While inside, every write to an audited target waits inside PostgreSQL."""
    with connect(settings, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (HOLD_KEY,))
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (HOLD_KEY,))


def waiting_on_hold(settings: LakesyncSettings) -> int:
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s", (HOLD_KEY,)
        ).fetchone()
    return int(row[0]) if row else 0


def audit_log(settings: LakesyncSettings, table: str) -> dict[int, list[tuple[str, int]]]:
    with connect(settings) as conn:
        query = sql.SQL("SELECT id, op, version FROM {} ORDER BY n").format(sql.Identifier("public", f"{table}_audit"))
        found: dict[int, list[tuple[str, int]]] = {}
        for key, op, version in conn.execute(query):
            found.setdefault(key, []).append((op, version))
    return found


class OffsetWatch(threading.Thread):
    """Reads the stored offsets over and over; records any partition whose offset went back."""

    def __init__(self, settings: LakesyncSettings, topic: str) -> None:
        super().__init__(daemon=True)
        self.settings, self.topic = settings, topic
        self.highest: dict[int, int] = {}
        self.went_back: list[tuple[int, int, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for partition, offset in applied_offsets(self.settings, self.topic).items():
                if offset < self.highest.get(partition, 0):
                    self.went_back.append((partition, self.highest[partition], offset))
                self.highest[partition] = max(offset, self.highest.get(partition, 0))
            time.sleep(0.05)


def interleaved(name: str, keys: range, first_version: int, rounds: int) -> tuple[list[Message], dict[int, int | None]]:
    """Upserts and deletes of the same keys, alternating per key; the version each key ends at (None: deleted)."""
    messages: list[Message] = []
    final: dict[int, int | None] = {}
    for r in range(rounds):
        version = first_version + r
        for key in keys:
            if (key + r) % 3 == 0:
                messages += delete(name, key, version)
                final[key] = None
            else:
                messages.append(upsert(name, key, version, name=f"k{key}v{version}"))
                final[key] = version
    return messages, final


def test_a_rebalance_while_a_batch_is_held_in_postgres_loses_nothing_and_resurrects_nothing(
    table_settings: LakesyncSettings,
) -> None:
    """Two consumers, a batch held inside PostgreSQL while the second joins and takes partitions.

    Interleaved upserts and deletes of the same keys end exactly as the last event per key says;
    no key is written twice at one version or at an older version than before (the audit log);
    the stored offsets never go back.
    """
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    one = make_settings(table_settings, name, batch_max_messages=40, group_instance_id="one", session_timeout_s=10.0)
    two = make_settings(table_settings, name, batch_max_messages=40, group_instance_id="two", session_timeout_s=10.0)
    produce(one, topic, [upsert(name, k, 1) for k in range(60)])
    run_until_caught_up(one, topic)
    install_audit(one, name)
    watch = OffsetWatch(one, topic)
    watch.start()
    first, expected = interleaved(name, range(60), 2, 3)
    later, expected_later = interleaved(name, range(60), 5, 3)
    expected.update(expected_later)
    with running(one) as member_one:
        with writes_held(one):
            produce(one, topic, first)
            wait_until(lambda: waiting_on_hold(one) > 0, 30, "a batch held inside PostgreSQL")
            with running(two) as member_two:
                wait_until(lambda: bool(member_two.assignment.partitions()), 60, "the second member to get partitions")
                time.sleep(1.0)  # claims and batches of both members now queue behind the hold
                produce(one, topic, later)
            # `two` stopped (static member: its partitions return to `one` after the session timeout)
        wait_caught_up(one, topic, 120)
        assert member_one.assignment.partitions()
    watch.stopped.set()
    watch.join(5)

    want = [(k, f"k{k}v{v}", Decimal("1.00"), v) for k, v in sorted(expected.items()) if v is not None]
    assert rows(one, name) == want
    for key, writes in audit_log(one, name).items():
        versions = [v for op, v in writes if op in ("I", "U")]
        assert versions == sorted(set(versions)), f"key {key} written out of order or twice: {writes}"
    assert not watch.went_back


def test_a_zombie_batch_is_fenced_and_writes_nothing(table_settings: LakesyncSettings) -> None:
    """A batch read under a claim PostgreSQL no longer holds, or at another offset, rolls back whole."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    produce(table_settings, topic, [upsert(name, 1, 1)])
    run_until_caught_up(table_settings, topic)
    target = TableTarget(name, topic, _ref(table_settings), ("id",))
    partition = 0
    with connect(table_settings) as conn:
        stored = _claim(conn, table_settings, topic, partition, "zombie/1")
        _claim(conn, table_settings, topic, partition, "new-owner/2")
    batch = _batch(target, partition, stored, [upsert(name, 7, 3), *delete(name, 1, 3)])
    applier = BatchApplier(
        SchemaKeeper(ConsumerSettings()), DeadLetterSink(table_settings.kafka), table_settings.consumer.group_id
    )

    with connect(table_settings) as conn:
        batch.ownership = Ownership("zombie/1", stored)
        with pytest.raises(BatchFencedError, match="claimed since"):
            applier.apply(conn, batch)
        batch.ownership = Ownership("new-owner/2", stored + 5)
        with pytest.raises(BatchFencedError, match="next offset"):
            applier.apply(conn, batch)
    assert [r[0] for r in rows(table_settings, name)] == [1]
    assert applied_offsets(table_settings, topic)[partition] == stored

    with connect(table_settings) as conn:
        batch.ownership = Ownership("new-owner/2", stored)
        applier.apply(conn, batch)
    assert [r[0] for r in rows(table_settings, name)] == [7]
    assert applied_offsets(table_settings, topic)[partition] == batch.next_offset


def test_two_writers_of_one_partition_are_serialized_and_the_second_is_fenced(
    table_settings: LakesyncSettings,
) -> None:
    """The row lock comes first: the second writer waits, then finds the first one's offset and drops
    its batch — also on the direct-COPY path, between whose key probe and COPY nothing can slip in."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    produce(table_settings, topic, [upsert(name, 1, 1)])
    run_until_caught_up(table_settings, topic)
    install_audit(table_settings, name)
    target = TableTarget(name, topic, _ref(table_settings), ("id",))
    with connect(table_settings) as conn:
        stored = _claim(conn, table_settings, topic, 0, "owner/1")
    applier = BatchApplier(
        SchemaKeeper(ConsumerSettings()), DeadLetterSink(table_settings.kafka), table_settings.consumer.group_id
    )
    first = _batch(target, 0, stored, [upsert(name, 50, 2, name="first")], Ownership("owner/1", stored))
    second = _batch(target, 0, stored, [upsert(name, 50, 1, name="second")], Ownership("owner/1", stored))
    outcomes: dict[str, object] = {}

    def write(label: str, batch: PartitionBatch) -> None:
        try:
            with connect(table_settings) as conn:
                outcomes[label] = applier.apply(conn, batch)
        except BatchFencedError as exc:
            outcomes[label] = exc

    with writes_held(table_settings):
        one = threading.Thread(target=write, args=("first", first))
        one.start()
        wait_until(lambda: waiting_on_hold(table_settings) == 1, 30, "the first writer held inside PostgreSQL")
        two = threading.Thread(target=write, args=("second", second))
        two.start()
        # The second writer waits on the row lock, not on the hold: one waiter on the hold, throughout.
        holds_for(lambda: waiting_on_hold(table_settings) == 1, 1.0, "one writer held inside PostgreSQL")
    one.join(30)
    two.join(30)
    assert isinstance(outcomes["second"], BatchFencedError) and not isinstance(outcomes["first"], Exception)
    assert rows(table_settings, name)[-1] == (50, "first", Decimal("1.00"), 2)


def _ref(settings: LakesyncSettings) -> TableRef:
    table = settings.tables[0]
    return TableRef(table.target_schema, table.target_table)


def _claim(conn: psycopg.Connection, settings: LakesyncSettings, topic: str, partition: int, owner: str) -> int:
    with conn.transaction():
        found: dict[int, int] = dict(
            conn.execute(*statements.claim_partitions(settings.consumer.group_id, topic, [partition], owner))
        )
    return int(found[partition])


def _batch(
    target: TableTarget, partition: int, first_offset: int, encoded: list[Message], ownership: Ownership | None = None
) -> PartitionBatch:
    records: list[DecodedMessage] = [
        Record(k, v, h, target.topic, partition, first_offset + i) for i, (k, v, h) in enumerate(encoded)
    ]
    batch = prepare_partition(records, [r.value() for r in records], target, TableDecoder(target.name, ["id"]))
    batch.ownership = ownership
    return batch
