"""What the stream does with one collapsed change, given what it has published for the key.

The stream's state holds, per live key, the row hash and the position (changes/order.py) of
what lakesync last published or confirmed for it. A change of the key is classified as

    quarantine  it cannot be synced (null key, failed cast, NUL character): dead-letter topic
    stale       its position is older than the state's (a replay of an older change)
    noop        an image whose hash equals the state's (a replay, or a rewrite of equal values);
                a delete of a key the state does not hold
    upsert      an image of a new key, or whose hash differs from the state's at the same or an
                older position (at the same position the state was wrong, e.g. seeded from a
                target that drifted: publishing is harmless, the consumer's guard decides)
    delete      a delete of a key the state holds

and the state moves with it: an upsert records the image's hash and position; a delete forgets
the key; a no-op image records its (newer) position with the same hash, so that a delete of the
same commit read later — Delta splits a commit over micro-batches when it has more files than a
micro-batch admits — is recognised as superseded and never published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from changes.order import DELETE, REPAIR_RANK, Position, position, supersedes

Action = Literal["upsert", "delete", "noop", "stale", "quarantine"]
ACTIONS: tuple[Action, ...] = ("upsert", "delete", "noop", "stale", "quarantine")
# Actions whose change goes to Kafka (quarantined rows to the dead-letter topic).
PUBLISHED: tuple[Action, ...] = ("upsert", "delete", "quarantine")


@dataclass(frozen=True)
class StateEntry:
    """What the stream's state holds for one live key."""

    row_hash: int
    version: int
    rank: int

    @property
    def position(self) -> Position:
        return self.version, self.rank


@dataclass(frozen=True)
class Forget:
    """The state must drop the key (it was deleted) if it holds nothing newer than `position`."""

    position: Position


StateChange = StateEntry | Forget | None


def classify(
    change_type: str, version: int, row_hash: int | None, problem: str | None, known: StateEntry | None
) -> tuple[Action, StateChange]:
    """The action for one collapsed change and what the state must record (None: nothing)."""
    if problem is not None:
        return "quarantine", None
    at = position(version, change_type)
    if known is not None and at < known.position:
        return "stale", None
    if known is not None and not supersedes(at, known.position) and known.row_hash == row_hash:
        return "noop", None
    if change_type == DELETE:
        return ("delete", Forget(at)) if known is not None else ("noop", None)
    if row_hash is None:
        raise ValueError(f"an image at version {version} without a row hash")
    entry = StateEntry(row_hash, at[0], at[1])
    if known is not None and known.row_hash == row_hash:
        return "noop", entry
    return "upsert", entry


def repair_state(action: str, version: int, row_hash: int | None) -> StateChange:
    """What a reconcile repair records: the repaired image, or the key forgotten."""
    if action == "delete":
        return Forget((version, REPAIR_RANK))
    if row_hash is None:
        raise ValueError(f"a repair upsert at version {version} without a row hash")
    return StateEntry(row_hash, version, REPAIR_RANK)
