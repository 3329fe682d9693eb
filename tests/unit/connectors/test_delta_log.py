"""How many files Delta's change-feed source indexes in one commit (connectors/delta_log.py)."""

from __future__ import annotations

from typing import Any

from connectors.delta_log import change_feed_files


def test_a_commit_with_cdc_files_is_read_from_those_only() -> None:
    actions: list[dict[str, Any]] = [
        {"commitInfo": {}},
        {"add": {"dataChange": True}},
        {"remove": {"dataChange": True}},
        {"cdc": {}},
    ]
    assert change_feed_files(actions) == 1


def test_otherwise_adds_and_removes_that_change_data_count() -> None:
    actions = [{"add": {"dataChange": True}}, {"remove": {"dataChange": True}}, {"add": {"dataChange": False}}]
    assert change_feed_files(actions) == 2


def test_a_commit_without_file_actions_has_none() -> None:
    assert change_feed_files([{"metaData": {}}, {"commitInfo": {}}]) == 0
