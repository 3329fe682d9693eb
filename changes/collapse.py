"""Collapse many changes of one key into the one that matters: the greatest by position.

Delta's change data feed can hold several rows for one key in one micro-batch: an insert then
updates across commits, the pre- and post-image of an update, and — in one commit — a delete
and an insert of the same key when an overwrite or a MERGE rewrites it. Per key, the change at
the greatest position (changes/order.py: commit version, then image over delete) survives;
`update_preimage` rows are dropped; on a full tie the change seen last wins (for the consumer:
the higher Kafka offset).

The same rule compacts consumer batches. The streaming job evaluates it in Spark with the ranks
of changes/order.py (streaming/publisher/diff.py); tests hold both to it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from changes.order import PREIMAGE, Position, position

Item = TypeVar("Item")


def latest_per_key(
    items: Iterable[Item],
    key: Callable[[Item], Hashable],
    order: Callable[[Item], Position],
) -> list[Item]:
    """The item with the greatest `order` per key (the last seen on ties), in first-seen key order."""
    winners: dict[Hashable, Item] = {}
    for item in items:
        k = key(item)
        current = winners.get(k)
        if current is None or order(item) >= order(current):
            winners[k] = item
    return list(winners.values())


def collapse_feed(
    rows: Iterable[Item],
    key: Callable[[Item], Hashable],
    change_type: Callable[[Item], str],
    commit_version: Callable[[Item], int],
) -> list[Item]:
    """One surviving change-feed row per key: preimages dropped, greatest position wins."""
    return latest_per_key(
        (row for row in rows if change_type(row) != PREIMAGE),
        key,
        lambda row: position(commit_version(row), change_type(row)),
    )
