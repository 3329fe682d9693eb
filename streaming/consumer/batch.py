"""A partition's consumed messages made ready to apply: decoded, compacted per key, staged as Arrow.

Pure logic, no I/O. `prepare_partition` takes the messages one poll loop collected from one
partition and returns a `PartitionBatch`, which apply.py writes in one transaction: its rows in
`StagedGroup`s (one per shape), each an Arrow table holding the staged values, the trailer
(version, commit timestamp, is-delete, is-repair) and the index of the message each row came
from. `isolate_poison` is the bisection plan used when PostgreSQL refuses a group of rows.

Two decoders fill the groups. A regular batch — envelopes of one schema, nothing malformed — is
decoded in one pass into Arrow columns (columnar.py). Anything else takes the message-by-message
decoder (decode.py), which says precisely which records are poison. Both compact with the one
order of changes (changes/order.py through changes/collapse.latest_per_key).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from changes.collapse import latest_per_key
from changes.errors import EnvelopeError
from connectors.postgres_schema import TableRef
from streaming.consumer import columnar
from streaming.consumer.decode import KEY, MESSAGE, ORDER, ROW, SHAPE, Change, Message, Shape, TableDecoder
from streaming.consumer.errors import UnconvertibleValueError

Item = TypeVar("Item")
Result = TypeVar("Result")
TopicPartition = tuple[str, int]

# The staged columns after the shape's values, then the row's message (never written).
VERSION, COMMIT_TS, IS_DELETE, IS_REPAIR = columnar.TRAILER
MESSAGE_INDEX = columnar.MESSAGE_INDEX

_key = operator.itemgetter(KEY)
_order = operator.itemgetter(ORDER)


@dataclass(frozen=True)
class BatchBounds:
    """When a batch being collected closes (the `[consumer]` batch keys)."""

    max_messages: int
    max_bytes: int
    max_wait_s: float
    idle_s: float

    def full(self, messages: int, size: int) -> bool:
        """Whether `messages` holding `size` bytes of values reached a bound: a batch closes then,
        and the Kafka thread stops reading ahead of a busy lane (what it reads is the next batch)."""
        return messages >= self.max_messages or size >= self.max_bytes


def collect_wait(bounds: BatchBounds, *, elapsed_s: float, messages: int, size: int, quiet: bool) -> float | None:
    """How long the next fetch may wait for more messages; None when the batch is closed.

    A batch closes when it is full, when `max_wait_s` passed since it opened, or when it holds
    messages and the last fetch (`quiet`) brought none in `idle_s`: a Delta commit's changes
    arrive in one burst, and waiting out `max_wait_s` after it would only add latency. Under a
    backlog every fetch brings messages, so batches still fill to their bounds.
    """
    if bounds.full(messages, size):
        return None
    remaining = bounds.max_wait_s - elapsed_s
    if remaining <= 0 or (quiet and messages > 0):
        return None
    return min(remaining, bounds.idle_s)


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
    rows: pa.Table

    def __len__(self) -> int:
        rows: int = self.rows.num_rows  # pyarrow is untyped ([tool.mypy])
        return rows

    @property
    def has_upserts(self) -> bool:
        return self.count(IS_DELETE) < len(self)

    def count(self, column: str) -> int:
        """How many rows have the boolean trailer `column` set."""
        return int(pc.sum(self.rows[column]).as_py() or 0)


@dataclass(frozen=True)
class Rejected:
    """A message that is not a valid envelope: it goes to the dead-letter topic as it came."""

    table: TableTarget
    message: Message
    error: Exception


@dataclass(frozen=True)
class Ownership:
    """The claim a batch is applied under: it commits only if PostgreSQL still holds both."""

    token: str
    # The partition's next offset as stored in PostgreSQL before this batch (compare-and-set).
    expected_offset: int


@dataclass
class PartitionBatch:
    """What one transaction applies: consecutive messages of one partition of one table's topic."""

    table: TableTarget
    partition: int
    messages: list[Message]
    first_offset: int
    last_offset: int
    groups: list[StagedGroup]
    rejected: list[Rejected]
    compacted_away: int = 0
    ownership: Ownership | None = None

    @property
    def topic(self) -> str:
        return self.table.topic

    @property
    def tp(self) -> TopicPartition:
        return self.table.topic, self.partition

    @property
    def next_offset(self) -> int:
        """Where the partition resumes after this batch: the last offset + 1."""
        return self.last_offset + 1

    def describe_offsets(self) -> str:
        """`topic[partition:first-last]`, for the batch's log lines."""
        return f"{self.topic}[{self.partition}:{self.first_offset}-{self.last_offset}]"


@dataclass
class Isolation(Generic[Item, Result]):
    """What bisection found: results of the parts that applied, and the refused single items."""

    applied: list[Result] = field(default_factory=list)
    poisoned: list[tuple[Item, BaseException]] = field(default_factory=list)
    attempts: int = 0


def prepare_partition(
    messages: list[Message], values: list[bytes | None], target: TableTarget, decoder: TableDecoder
) -> PartitionBatch:
    """Decode, compact and stage one partition's messages (`values`: their values, in order)."""
    regular = columnar.decode(messages, values, decoder)
    if regular is not None:
        staged = [StagedGroup(target, shape, rows) for shape, rows in regular.groups]
        rejected = [Rejected(target, messages[i], exc) for i, exc in regular.rejected]
        kept = regular.kept
    else:
        staged, rejected, kept = decode_each(messages, target, decoder)
    return PartitionBatch(
        target,
        messages[0].partition(),  # type: ignore[arg-type]  # consumed: set (connectors/kafka_messages.py)
        messages,
        messages[0].offset(),  # type: ignore[arg-type]  # as above
        messages[-1].offset(),  # type: ignore[arg-type]  # as above
        staged,
        rejected,
        compacted_away=len(messages) - len(rejected) - kept,
    )


def decode_each(
    messages: Sequence[Message], target: TableTarget, decoder: TableDecoder
) -> tuple[list[StagedGroup], list[Rejected], int]:
    """The message-by-message path: each poison record is found and rejected on its own."""
    changes: list[Change] = []
    rejected: list[Rejected] = []
    for index, message in enumerate(messages):
        try:
            change = decoder.decode(message)
        except EnvelopeError as exc:
            rejected.append(Rejected(target, message, exc))
            continue
        if any(type(value) in _CONTAINERS for value in change[ROW]):
            error = UnconvertibleValueError("a list or object value where the envelope contract allows only scalars")
            rejected.append(Rejected(target, message, error))
            continue
        changes.append((*change[:MESSAGE], index))
    survivors = compact(changes)
    groups = [StagedGroup(target, shape, staged_rows(shape, rows)) for shape, rows in group_by_shape(survivors).items()]
    return groups, rejected, len(survivors)


_CONTAINERS = frozenset({list, dict})


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


def staged_rows(shape: Shape, changes: Sequence[Change]) -> pa.Table:
    """Changes of one shape as an Arrow table: their staged values, trailer and message index."""
    names = [c.name for c in shape.columns] + list(columnar.TRAILER)
    columns = list(zip(*(change[ROW] for change in changes), strict=True))
    arrays = [_array(values) for values in columns]
    arrays.append(pa.array([change[MESSAGE] for change in changes], pa.int64()))
    return pa.Table.from_arrays(arrays, names=[*names, MESSAGE_INDEX])


def _array(values: Sequence[Any]) -> pa.Array:
    """JSON scalars as one Arrow column; mixed kinds become PostgreSQL text input instead."""
    try:
        return pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return pa.array([_as_text(v) for v in values], pa.string())


def _as_text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    return repr(value)


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


@dataclass(frozen=True)
class Refused:
    """What a bisection attempt returns when PostgreSQL refused its rows as poison."""

    error: BaseException
