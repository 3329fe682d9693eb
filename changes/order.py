"""The one order of a key's changes: which of two changes of the same key wins.

Every change of a key sits at a *position* `(commit version, rank)`, compared as a tuple:

    rank  DELETE 0  <  IMAGE 1 (insert, update_postimage, upsert)  <  REPAIR 2

- Versions are Delta commit versions: a later commit always wins.
- Within one commit the image outranks the delete. A commit that deletes and re-inserts a key (a
  full or predicate overwrite, a MERGE) leaves the key with its image, and Delta may hand the
  commit's deletes and inserts to different micro-batches, in either order, when the commit has
  more files than a micro-batch admits (`maxFilesPerTrigger`): by position, the delete read
  after the image is recognised as superseded, and the image read after the delete replaces it.
- A reconcile repair re-asserts the source's state at its pinned version: it outranks every
  change of that version, and replaces even an entry at its own position (a repeated repair).
- `update_preimage` rows describe the state before a change: they have no position and are
  never applied.

Every component compares with `supersedes`: the collapse of a micro-batch or a consumer batch
(changes/collapse.py, and its Spark twin in streaming/publisher/diff.py), the stream's state (a
change is published only when it supersedes the state's entry; no-ops record their position
too), and the consumer's guarded SQL (streaming/consumer/statements.py, which renders the same
comparison as a row comparison `(version, rank) > (version, rank)`). A target row is an image at
its `_lakesync_version`, a tombstone a delete at its version.
"""

from __future__ import annotations

DELETE_RANK = 0
IMAGE_RANK = 1
REPAIR_RANK = 2

PREIMAGE = "update_preimage"
DELETE = "delete"
# The change types of a Delta change data feed and of lakesync envelopes, with their rank.
RANKS: dict[str, int] = {
    "delete": DELETE_RANK,
    "insert": IMAGE_RANK,
    "update_postimage": IMAGE_RANK,
    "upsert": IMAGE_RANK,
}

Position = tuple[int, int]


def rank(change_type: str, *, repair: bool = False) -> int:
    """The rank of a change type within its commit (a repair outranks them all)."""
    if repair:
        return REPAIR_RANK
    try:
        return RANKS[change_type]
    except KeyError:
        raise ValueError(f"a {change_type!r} change has no position (only {sorted(RANKS)} do)") from None


def position(version: int, change_type: str, *, repair: bool = False) -> Position:
    """Where a change sits in its key's history."""
    return version, rank(change_type, repair=repair)


def supersedes(new: Position, old: Position | None) -> bool:
    """Does the change at `new` replace what is known at `old` (None: nothing is known)?

    Strictly newer only, so a replayed change (same position) changes nothing; except a repair,
    which replaces an entry at its own position too.
    """
    return old is None or new > old or (new[1] == REPAIR_RANK and new >= old)
