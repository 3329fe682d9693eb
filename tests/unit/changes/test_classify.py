"""The stream's classification of a collapsed change against its state (changes/classify.py)."""

from __future__ import annotations

import pytest

from changes.classify import Forget, StateEntry, classify, repair_state
from changes.order import DELETE_RANK, IMAGE_RANK, REPAIR_RANK

KNOWN = StateEntry(row_hash=11, version=4, rank=IMAGE_RANK)


def test_an_image_of_a_new_key_is_an_upsert_recorded_at_its_position() -> None:
    assert classify("insert", 5, 22, None, None) == ("upsert", StateEntry(22, 5, IMAGE_RANK))


def test_a_changed_image_is_an_upsert() -> None:
    assert classify("update_postimage", 5, 22, None, KNOWN) == ("upsert", StateEntry(22, 5, IMAGE_RANK))


def test_an_unchanged_image_is_a_noop_that_still_records_its_position() -> None:
    """So a delete of the same commit read in a later micro-batch knows it was superseded."""
    assert classify("insert", 5, 11, None, KNOWN) == ("noop", StateEntry(11, 5, IMAGE_RANK))


def test_a_delete_of_a_known_key_is_published_and_forgets_the_key() -> None:
    assert classify("delete", 5, None, None, KNOWN) == ("delete", Forget((5, DELETE_RANK)))


def test_a_delete_of_an_unknown_key_is_a_noop() -> None:
    assert classify("delete", 5, None, None, None) == ("noop", None)


def test_a_delete_read_after_the_image_of_its_own_commit_is_superseded() -> None:
    """The split-commit case: a full overwrite with identical rows, inserts read first."""
    _, recorded = classify("insert", 7, 11, None, KNOWN)
    assert isinstance(recorded, StateEntry)
    assert classify("delete", 7, None, None, recorded) == ("stale", None)


def test_an_image_read_after_the_delete_of_its_own_commit_is_published() -> None:
    """The split-commit case with the deletes read first: the key is gone, the image brings it back."""
    assert classify("insert", 7, 11, None, None) == ("upsert", StateEntry(11, 7, IMAGE_RANK))


def test_a_replay_at_the_recorded_position_is_a_noop_and_older_is_stale() -> None:
    assert classify("update_postimage", 4, 11, None, KNOWN) == ("noop", None)
    assert classify("update_postimage", 3, 99, None, KNOWN) == ("stale", None)


def test_an_image_that_disagrees_with_the_state_at_its_own_position_is_published() -> None:
    """The state was wrong (seeded from a drifted target): publishing is harmless, the consumer guards."""
    assert classify("insert", 4, 99, None, KNOWN) == ("upsert", StateEntry(99, 4, IMAGE_RANK))


def test_a_change_of_the_version_a_repair_pinned_is_stale() -> None:
    repaired = StateEntry(11, 4, REPAIR_RANK)
    assert classify("insert", 4, 99, None, repaired) == ("stale", None)
    assert classify("insert", 5, 99, None, repaired)[0] == "upsert"


def test_a_problem_row_is_quarantined_whatever_the_state() -> None:
    assert classify("insert", 5, 22, "cast_failed:price", KNOWN) == ("quarantine", None)


def test_an_image_without_a_hash_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="without a row hash"):
        classify("insert", 5, None, None, None)


def test_repairs_record_at_the_repair_rank() -> None:
    assert repair_state("upsert", 9, 5) == StateEntry(5, 9, REPAIR_RANK)
    assert repair_state("delete", 9, None) == Forget((9, REPAIR_RANK))
