"""The one order of a key's changes (changes/order.py)."""

from __future__ import annotations

import pytest

from changes.order import DELETE_RANK, IMAGE_RANK, REPAIR_RANK, position, rank, supersedes


def test_a_later_commit_supersedes_any_change_of_an_earlier_one() -> None:
    assert supersedes(position(5, "delete"), position(4, "insert"))
    assert supersedes(position(5, "insert"), position(4, "upsert", repair=True))
    assert not supersedes(position(4, "update_postimage"), position(5, "delete"))


def test_within_one_commit_the_image_outranks_the_delete() -> None:
    """A commit that deletes and re-inserts a key ends with the key present, in either reading order."""
    image, delete = position(7, "insert"), position(7, "delete")
    assert supersedes(image, delete)
    assert not supersedes(delete, image)


def test_a_replay_at_the_same_position_changes_nothing() -> None:
    assert not supersedes(position(3, "upsert"), position(3, "update_postimage"))
    assert not supersedes(position(3, "delete"), position(3, "delete"))


def test_a_repair_outranks_every_change_of_its_version_and_repeats() -> None:
    repair = position(9, "delete", repair=True)
    assert supersedes(repair, position(9, "insert"))
    assert supersedes(repair, repair)
    assert not supersedes(repair, position(10, "delete"))


def test_nothing_known_is_superseded_by_anything() -> None:
    assert supersedes(position(0, "delete"), None)


def test_preimages_have_no_position() -> None:
    with pytest.raises(ValueError, match="update_preimage"):
        rank("update_preimage")


def test_ranks_are_ordered_delete_image_repair() -> None:
    assert DELETE_RANK < IMAGE_RANK < REPAIR_RANK
    assert rank("upsert") == rank("insert") == rank("update_postimage") == IMAGE_RANK
