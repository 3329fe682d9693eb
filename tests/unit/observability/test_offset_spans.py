"""The offset ranges the streaming job logs per batch, in the consumer's format."""

from __future__ import annotations

from streaming.publisher.kafka_sink import OffsetSpansParam, describe_spans


def test_spans_merge_by_min_and_max() -> None:
    param = OffsetSpansParam()
    merged = param.addInPlace(param.zero({}), {0: (10, 20), 1: (5, 5)})
    merged = param.addInPlace(merged, {0: (8, 15), 2: (1, 3)})
    assert merged == {0: (8, 20), 1: (5, 5), 2: (1, 3)}


def test_a_retried_task_adding_its_spans_again_changes_nothing() -> None:
    param = OffsetSpansParam()
    once = param.addInPlace({}, {0: (10, 20)})
    assert param.addInPlace(dict(once), {0: (10, 20)}) == once


def test_described_like_the_consumer_describes_its_batches() -> None:
    assert describe_spans("lakesync.people", {1: (16, 24), 0: (3, 9)}) == "lakesync.people[0:3-9,1:16-24]"
    assert describe_spans("lakesync.people", {}) == ""
