"""What Kafka messages hold, in the types lakesync relies on.

confluent-kafka's stubs type `Message` for messages built by hand too: topic, partition and offset
may be None, and headers are anything a producer accepts (a dict, or pairs with str, bytes or None
values). A message a consumer returns always has its topic, partition and offset, and its headers
are (name, bytes) pairs. These helpers state that once, as casts: they cost nothing at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from confluent_kafka import Message

# Headers as confluent-kafka's produce() accepts them (its HeadersType, list form).
ProducedHeaders = list[tuple[str, str | bytes | None]]
ConsumedHeaders = list[tuple[str, bytes]]


def topic_partition(message: Message) -> tuple[str, int]:
    """The topic and partition of a consumed message."""
    return cast(str, message.topic()), cast(int, message.partition())


def position(message: Message) -> tuple[str, int, int]:
    """The topic, partition and offset of a consumed message."""
    return cast(str, message.topic()), cast(int, message.partition()), cast(int, message.offset())


def consumed_headers(message: Message) -> ConsumedHeaders | None:
    """The headers of a consumed message: (name, bytes) pairs, or None when it has none."""
    return cast("ConsumedHeaders | None", message.headers())


def produced_headers(headers: ConsumedHeaders) -> ProducedHeaders:
    """(name, bytes) pairs as produce() takes them (lists are invariant, hence the cast)."""
    return cast(ProducedHeaders, headers)
