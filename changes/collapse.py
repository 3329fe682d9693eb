"""Collapse many changes of one key into the one that matters: the latest.

Delta's change data feed can hold several rows for one key in one micro-batch: an insert then
updates across commits, the pre- and post-image of an update, and — in one commit — a delete
and an insert of the same key when an overwrite or a MERGE rewrites it. The rule:

1. `update_preimage` rows are dropped: they describe the state before, never a change to apply.
2. Per key, the row with the highest `_commit_version` wins.
3. Within one commit version an image (`insert` / `update_postimage`) beats a `delete`: when a
   commit deletes and re-inserts a key, the key survives with the inserted image.
4. On a full tie the row seen last wins (for the consumer: the higher Kafka offset).

The same ordering compacts consumer batches (`upsert` ranks like an image). The streaming job
evaluates it in Spark with `IMAGE_RANK` (streaming/diff.py); tests hold both to these rules.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

Item = TypeVar("Item")

PREIMAGE = "update_preimage"
# Rank of each change type within one commit version; higher wins. Preimages are dropped.
IMAGE_RANK: dict[str, int] = {"delete": 0, "insert": 1, "update_postimage": 1, "upsert": 1}


def latest_per_key(
    items: Iterable[Item],
    key: Callable[[Item], Hashable],
    order: Callable[[Item], tuple[int, ...]],
) -> list[Item]:
    """The item with the greatest `order` per key (the last seen on ties), in first-seen key order."""
    winners: dict[Hashable, Item] = {}
    for item in items:
        k = key(item)
        current = winners.get(k)
        if current is None or order(item) >= order(current):
            winners[k] = item
    return list(winners.values())


def change_order(change_type: str, commit_version: int) -> tuple[int, int]:
    """Sort key of a change: commit version first, then image over delete."""
    return commit_version, IMAGE_RANK[change_type]


def collapse_feed(
    rows: Iterable[Item],
    key: Callable[[Item], Hashable],
    change_type: Callable[[Item], str],
    commit_version: Callable[[Item], int],
) -> list[Item]:
    """Apply rules 1-4 to change-feed rows: one surviving row per key."""
    return latest_per_key(
        (row for row in rows if change_type(row) != PREIMAGE),
        key,
        lambda row: change_order(change_type(row), commit_version(row)),
    )
