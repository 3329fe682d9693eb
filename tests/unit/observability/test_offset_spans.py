"""The tallies of a batch's publishing tasks, and the offset ranges the streaming job logs per batch."""

from __future__ import annotations

from streaming.publisher.partition_publisher import Tally, describe_spans, sum_tallies


def _tally(spans: dict[int, tuple[int, int]], **actions: int) -> Tally:
    tally = Tally(spans=dict(spans))
    tally.actions.update(actions)
    return tally


def test_spans_merge_by_min_and_max() -> None:
    total = sum_tallies(
        {"tally": t.to_json()} for t in (_tally({0: (10, 20), 1: (5, 5)}), _tally({0: (8, 15), 2: (1, 3)}))
    )
    assert total.spans == {0: (8, 20), 1: (5, 5), 2: (1, 3)}


def test_task_tallies_add_up_and_survive_their_json_round_trip() -> None:
    one = _tally({}, upsert=3, noop=1)
    one.count("stale", group_rows=4, version=7, commit_micros=1_000)
    total = sum_tallies([{"tally": one.to_json()}, {"tally": _tally({}, delete=2).to_json()}])
    assert (total.actions["upsert"], total.actions["delete"], total.actions["stale"]) == (3, 2, 1)
    assert (total.group_rows, total.min_version, total.max_version, total.max_commit_micros) == (4, 7, 7, 1_000)


def test_described_like_the_consumer_describes_its_batches() -> None:
    assert describe_spans("lakesync.people", {1: (16, 24), 0: (3, 9)}) == "lakesync.people[0:3-9,1:16-24]"
    assert describe_spans("lakesync.people", {}) == ""
