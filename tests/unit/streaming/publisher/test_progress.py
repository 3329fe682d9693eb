"""The streaming job's progress: the newest completely read Delta version, from the source's end offset."""

from __future__ import annotations

import json
from collections.abc import Callable

from streaming.publisher.progress import completed_from_offset, end_offset_of

END = {"sourceVersion": 1, "reservoirId": "x", "reservoirVersion": 7, "index": -1, "isStartingVersion": False}


def _files(count: int | None) -> Callable[[int], int | None]:
    return lambda version: count


def test_completed_version_is_the_one_before_the_next_to_read() -> None:
    assert completed_from_offset(json.dumps(END), _files(3)) == 6


def test_a_partly_read_version_is_not_complete() -> None:
    assert completed_from_offset({**END, "index": 12}, _files(20)) == 6


def test_a_version_read_up_to_its_last_file_is_complete() -> None:
    """Delta's source stops at the newest commit's last file, not past it: idle means complete."""
    assert completed_from_offset({**END, "index": 0}, _files(1)) == 7
    assert completed_from_offset({**END, "index": 19}, _files(20)) == 7


def test_an_unknown_file_count_or_a_snapshot_offset_stays_conservative() -> None:
    assert completed_from_offset({**END, "index": 0}, _files(None)) == 6
    assert completed_from_offset({**END, "index": 5, "isStartingVersion": True}, _files(6)) == 6


def test_progress_without_a_delta_offset_is_ignored() -> None:
    assert end_offset_of({"batchId": 0, "sources": []}) is None
    assert completed_from_offset(None, _files(1)) is None
    assert completed_from_offset({"other": 1}, _files(1)) is None


def test_the_end_offset_is_read_from_the_first_source() -> None:
    assert end_offset_of({"sources": [{"endOffset": END}]}) == END
