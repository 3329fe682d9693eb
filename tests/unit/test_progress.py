"""The streaming job's progress record: the newest fully published Delta version."""

from __future__ import annotations

import json
from pathlib import Path

from streaming.publisher.progress import Progress, load_progress, save_progress

END = {"sourceVersion": 1, "reservoirId": "x", "reservoirVersion": 7, "index": -1, "isStartingVersion": False}


def test_completed_version_is_the_one_before_the_next_to_read() -> None:
    progress = Progress.from_query_progress({"batchId": 3, "sources": [{"endOffset": json.dumps(END)}]})
    assert progress is not None and progress.completed_version == 6 and progress.batch_id == 3


def test_a_partly_read_version_is_not_complete() -> None:
    partial = {**END, "index": 12}
    progress = Progress.from_query_progress({"batchId": 4, "sources": [{"endOffset": partial}]})
    assert progress is not None and progress.completed_version == 6


def test_progress_without_a_delta_offset_is_ignored() -> None:
    assert Progress.from_query_progress({"batchId": 0, "sources": []}) is None


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    save_progress(tmp_path, Progress(5, 2, "2026-11-22T00:00:00+00:00"))
    assert load_progress(tmp_path) == Progress(5, 2, "2026-11-22T00:00:00+00:00")
    assert load_progress(tmp_path / "missing") is None


def test_published_version_is_the_newest_seen_in_data() -> None:
    partial = {**END, "index": 0}
    progress = Progress.from_query_progress({"batchId": 4, "sources": [{"endOffset": partial}]}, published_version=7)
    assert progress is not None and (progress.completed_version, progress.published_version) == (6, 7)
