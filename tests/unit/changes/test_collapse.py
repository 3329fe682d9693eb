"""Per-key collapsing: latest commit wins, preimages vanish, a re-insert beats its delete."""

from __future__ import annotations

from changes.collapse import collapse_feed, latest_per_key

Row = tuple[int, str, int, str]  # key, change type, commit version, value


def collapse(rows: list[Row]) -> list[Row]:
    return collapse_feed(rows, key=lambda r: r[0], change_type=lambda r: r[1], commit_version=lambda r: r[2])


def test_latest_commit_version_wins() -> None:
    rows = [(1, "insert", 3, "a"), (1, "update_postimage", 5, "c"), (1, "update_postimage", 4, "b")]
    assert collapse(rows) == [(1, "update_postimage", 5, "c")]


def test_preimages_are_dropped() -> None:
    rows = [(1, "update_preimage", 2, "old"), (1, "update_postimage", 2, "new")]
    assert collapse(rows) == [(1, "update_postimage", 2, "new")]


def test_only_a_preimage_leaves_nothing() -> None:
    assert collapse([(1, "update_preimage", 2, "old")]) == []


def test_delete_and_insert_in_one_commit_keep_the_insert_whatever_the_order() -> None:
    """An overwrite or MERGE deletes and re-inserts a key in one commit: the key survives."""
    assert collapse([(1, "delete", 7, "old"), (1, "insert", 7, "new")]) == [(1, "insert", 7, "new")]
    assert collapse([(1, "insert", 7, "new"), (1, "delete", 7, "old")]) == [(1, "insert", 7, "new")]


def test_a_later_delete_beats_an_earlier_insert() -> None:
    assert collapse([(1, "insert", 1, "a"), (1, "delete", 2, "a")]) == [(1, "delete", 2, "a")]


def test_keys_are_independent_and_keep_first_seen_order() -> None:
    rows = [(2, "insert", 1, "x"), (1, "insert", 1, "y"), (2, "delete", 3, "x")]
    assert collapse(rows) == [(2, "delete", 3, "x"), (1, "insert", 1, "y")]


def test_full_tie_keeps_the_last_seen() -> None:
    """Two events with the same order: the later one (higher offset) wins."""
    items = [("k", (5, 1), "first"), ("k", (5, 1), "second")]
    assert latest_per_key(items, key=lambda i: i[0], order=lambda i: i[1]) == [("k", (5, 1), "second")]
