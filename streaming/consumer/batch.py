"""A consumed batch made ready to apply: decoded, compacted per key, grouped; plus bisection.

Pure logic, no I/O: `prepare_batch` takes the messages one poll loop collected and returns a
`PreparedBatch` (what apply.py writes in one transaction); `isolate_poison` is the bisection
plan used when PostgreSQL refuses a group of rows.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from changes.collapse import latest_per_key
from changes.envelope import EnvelopeError
from connectors.postgres_schema import TableRef
from streaming.consumer.decode import KEY, ORDER, ROW, SHAPE, Change, Message, Shape, TableDecoder

Item = TypeVar("Item")
Result = TypeVar("Result")
TopicPartition = tuple[str, int]

_key = operator.itemgetter(KEY)
_order = operator.itemgetter(ORDER)


@dataclass(frozen=True)
class TableTarget:
    """Where one topic's changes go."""

    name: str
    topic: str
    ref: TableRef
    key_columns: tuple[str, ...]


@dataclass
class StagedGroup:
    """Surviving changes of one table that share one shape: one staging table, one merge."""

    table: TableTarget
    shape: Shape
    changes: list[Change]

    @property
    def has_upserts(self) -> bool:
        return any(not c[ROW][-2] for c in self.changes)

    @property
    def has_deletes(self) -> bool:
        return any(c[ROW][-2] for c in self.changes)

    @property
    def has_repairs(self) -> bool:
        return any(c[ROW][-1] for c in self.changes)


@dataclass(frozen=True)
class Rejected:
    """A message that is not a valid envelope: it goes to the dead-letter topic as it came."""

    table: TableTarget
    message: Message
    error: Exception


@dataclass
class PreparedBatch:
    groups: list[StagedGroup]
    rejected: list[Rejected]
    # (topic, partition) -> [first offset, last offset] consumed in this batch.
    offsets: dict[TopicPartition, list[int]]
    messages: int
    generation: int = 0
    compacted_away: int = 0
    messages_by_table: dict[str, int] = field(default_factory=dict)

    @property
    def next_offsets(self) -> dict[TopicPartition, int]:
        """Where each partition resumes after this batch: the last offset + 1."""
        return {tp: last + 1 for tp, (_, last) in self.offsets.items()}

    @property
    def tables(self) -> list[str]:
        """The table mappings this batch has messages for (a correlation field of its log lines)."""
        return sorted(name for name, count in self.messages_by_table.items() if count)

    @property
    def topics(self) -> list[str]:
        return sorted({topic for topic, _ in self.offsets})

    def describe_offsets(self) -> str:
        """`topic[partition:first-last,...]` per topic, for the batch's log line."""
        by_topic: dict[str, list[str]] = {}
        for (topic, partition), (first, last) in sorted(self.offsets.items()):
            by_topic.setdefault(topic, []).append(f"{partition}:{first}-{last}")
        return " ".join(f"{topic}[{','.join(ranges)}]" for topic, ranges in by_topic.items())


@dataclass
class Isolation(Generic[Item, Result]):
    """What bisection found: results of the parts that applied, and the refused single items."""

    applied: list[Result] = field(default_factory=list)
    poisoned: list[tuple[Item, BaseException]] = field(default_factory=list)
    attempts: int = 0


def prepare_batch(
    messages: Iterable[Message],
    targets: Mapping[str, TableTarget],
    decoders: Mapping[str, TableDecoder],
    *,
    generation: int = 0,
) -> PreparedBatch:
    """Decode every message (bad ones → rejected), keep the latest change per key, group by shape."""
    offsets: dict[TopicPartition, list[int]] = {}
    by_topic: dict[str, list[Change]] = {topic: [] for topic in targets}
    rejected: list[Rejected] = []
    count = 0
    for message in messages:
        count += 1
        topic, offset = message.topic(), message.offset()
        tp = (topic, message.partition())
        span = offsets.get(tp)  # type: ignore[arg-type]
        if span is None:
            offsets[tp] = [offset, offset]  # type: ignore[index, list-item]
        else:
            span[1] = offset  # type: ignore[assignment]
        try:
            by_topic[topic].append(decoders[topic].decode(message))  # type: ignore[index]
        except EnvelopeError as exc:
            rejected.append(Rejected(targets[topic], message, exc))  # type: ignore[index]
    groups: list[StagedGroup] = []
    kept = 0
    per_table = {targets[topic].name: len(changes) for topic, changes in by_topic.items()}
    for r in rejected:
        per_table[r.table.name] += 1
    for topic, changes in by_topic.items():
        survivors = compact(changes)
        kept += len(survivors)
        groups.extend(StagedGroup(targets[topic], shape, rows) for shape, rows in group_by_shape(survivors).items())
    return PreparedBatch(
        groups,
        rejected,
        offsets,
        count,
        generation=generation,  # type: ignore[arg-type]
        compacted_away=count - len(rejected) - kept,
        messages_by_table=per_table,
    )


def compact(changes: Sequence[Change]) -> list[Change]:
    """The latest change per key by position (changes/order.py); on a tie the later offset wins."""
    return latest_per_key(changes, _key, _order)


def group_by_shape(changes: Iterable[Change]) -> dict[Shape, list[Change]]:
    groups: dict[Shape, list[Change]] = {}
    for change in changes:
        shape = change[SHAPE]
        group = groups.get(shape)
        if group is None:
            groups[shape] = [change]
        else:
            group.append(change)
    return groups


@dataclass(frozen=True)
class Refused:
    """What a bisection attempt returns when PostgreSQL refused its rows as poison."""

    error: BaseException


def isolate_poison(
    items: Sequence[Item], attempt: Callable[[Sequence[Item]], Result | Refused]
) -> Isolation[Item, Result]:
    """Apply `items` in halves, recursively, until every refused part is a single item.

    `attempt` applies a part (in its own savepoint) and returns its result, or a `Refused`
    holding the poison error; any other error propagates. Parts are tried in order, so with one
    bad item among n the cost is about 2·log2(n) attempts.
    """
    found: Isolation[Item, Result] = Isolation()
    pending: list[Sequence[Item]] = [items]
    while pending:
        part = pending.pop()
        if not part:
            continue
        found.attempts += 1
        outcome = attempt(part)
        if not isinstance(outcome, Refused):
            found.applied.append(outcome)
        elif len(part) == 1:
            found.poisoned.append((part[0], outcome.error))
        else:
            middle = len(part) // 2
            pending.append(part[middle:])
            pending.append(part[:middle])
    return found
