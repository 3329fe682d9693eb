"""The Burrow-style status rules, on plain samples."""

from __future__ import annotations

import pytest

from observability.lag import (
    GroupSample,
    LagWindow,
    PartitionSample,
    Status,
    evaluate_partition,
    history_json,
)


def part(
    committed: int | None, end: int, *, start: int = 0, owned: bool | None = True, ts: float | None = None
) -> PartitionSample:
    return PartitionSample(log_start=start, log_end=end, committed=committed, oldest_unapplied_ts=ts, owned=owned)


def series(*pairs: tuple[int, int], owned: bool = True) -> list[PartitionSample]:
    return [part(committed, end, owned=owned) for committed, end in pairs]


def group(
    at: float,
    parts: dict[tuple[str, int], PartitionSample],
    *,
    members: int = 1,
    missing: tuple[str, ...] = (),
    dlq: int | None = None,
) -> GroupSample:
    return GroupSample(at, "g", members, parts, missing_topics=missing, dead_letter_records=dlq)


class TestPartitionSample:
    def test_lag_is_clamped_at_zero(self) -> None:
        """A commit landing between the two offset requests never makes the lag negative."""
        assert part(12, 10).offset_lag == 0

    def test_never_committed_lags_from_the_log_start(self) -> None:
        """With no committed offset the group would start at the earliest record."""
        assert part(None, 10, start=4).offset_lag == 6

    def test_time_lag_is_the_age_of_the_oldest_unapplied_record(self) -> None:
        assert part(5, 10, ts=100.0).time_lag_s(130.0) == 30.0

    def test_time_lag_is_zero_when_caught_up_and_unknown_without_a_timestamp(self) -> None:
        assert part(10, 10).time_lag_s(130.0) == 0.0
        assert part(5, 10).time_lag_s(130.0) is None

    def test_time_lag_is_never_negative(self) -> None:
        """Clocks of producer and reader may disagree a little."""
        assert part(5, 10, ts=200.0).time_lag_s(130.0) == 0.0


class TestPartitionRules:
    def test_ok_when_lag_touched_zero_in_the_window(self) -> None:
        """Burrow's first rule: reaching zero once in the window is healthy, whatever the peaks."""
        assert evaluate_partition(series((10, 10), (10, 50), (10, 90)))[0] is Status.OK

    def test_stop_when_no_member_owns_the_partition(self) -> None:
        assert evaluate_partition(series((10, 20), (10, 30), owned=False))[0] is Status.STOP

    def test_stop_even_from_a_single_sample(self) -> None:
        """`lakesync lag --window 0` still tells a stopped consumer."""
        assert evaluate_partition(series((None, 30), owned=False))[0] is Status.STOP  # type: ignore[arg-type]  # a sample without its log end, which the evaluation must survive

    def test_stall_when_owned_but_the_offset_does_not_move(self) -> None:
        status, reason = evaluate_partition(series((10, 20), (10, 20), (10, 25)))
        assert status is Status.STALL
        assert "did not move" in reason

    def test_warn_when_consuming_but_lag_keeps_growing(self) -> None:
        assert evaluate_partition(series((10, 20), (12, 30), (15, 40)))[0] is Status.WARN

    def test_no_warn_from_two_samples(self) -> None:
        """One interval shows no trend."""
        assert evaluate_partition(series((10, 20), (12, 30)))[0] is Status.OK

    def test_ok_when_lag_shrinks_once(self) -> None:
        assert evaluate_partition(series((10, 20), (12, 30), (25, 31), (26, 40)))[0] is Status.OK

    def test_ok_when_behind_with_a_single_sample(self) -> None:
        assert evaluate_partition(series((10, 20)))[0] is Status.OK

    def test_err_when_committed_past_the_log_end(self) -> None:
        """The topic was recreated or truncated under the group."""
        assert evaluate_partition(series((50, 20)))[0] is Status.ERR

    def test_err_when_unapplied_records_were_deleted(self) -> None:
        assert evaluate_partition([part(3, 20, start=10)])[0] is Status.ERR

    def test_err_when_the_group_was_rewound(self) -> None:
        assert evaluate_partition(series((10, 20), (5, 20), (6, 20)))[0] is Status.ERR

    def test_err_outranks_ok(self) -> None:
        assert evaluate_partition(series((10, 10), (5, 10)))[0] is Status.ERR

    def test_unknown_ownership_is_not_stop(self) -> None:
        """While the group rebalances, ownership is unknown: judged by the offsets instead."""
        samples = [part(10, 20, owned=None), part(10, 20, owned=None)]
        assert evaluate_partition(samples)[0] is Status.STALL


class TestWindow:
    def test_group_status_is_the_most_severe_partition(self) -> None:
        window = LagWindow(window_s=10, history_s=60, tables={"t.a": "a"})
        for at, end in ((0, 5), (5, 9), (10, 12)):
            window.add(group(at, {("t.a", 0): part(end, end), ("t.a", 1): part(3, end)}))
        result = window.evaluate()
        assert result is not None
        assert result.status is Status.STALL
        assert [p.status for p in result.partitions] == [Status.OK, Status.STALL]
        assert result.tables[0].table == "a" and result.tables[0].status is Status.STALL
        assert "1 partition(s) STALL" in result.reason

    def test_only_samples_within_the_window_count(self) -> None:
        """An old zero-lag sample outside the window no longer makes the partition OK."""
        window = LagWindow(window_s=10, history_s=60)
        window.add(group(0, {("t", 0): part(5, 5)}))
        for at in (20, 25, 30):
            window.add(group(at, {("t", 0): part(5, 9)}))
        result = window.evaluate()
        assert result is not None and result.status is Status.STALL and result.samples == 3

    def test_history_is_bounded(self) -> None:
        window = LagWindow(window_s=10, history_s=30)
        for at in range(0, 100, 5):
            window.add(group(at, {("t", 0): part(1, 1)}))
        assert [s.at for s in window.samples] == [65, 70, 75, 80, 85, 90, 95]

    def test_missing_topic_is_err(self) -> None:
        window = LagWindow(window_s=10, history_s=30)
        window.add(group(0, {}, missing=("t.gone",)))
        result = window.evaluate()
        assert result is not None and result.status is Status.ERR and "t.gone" in result.reason

    def test_no_sample_no_verdict(self) -> None:
        assert LagWindow(window_s=10, history_s=30).evaluate() is None

    def test_history_must_cover_the_window(self) -> None:
        with pytest.raises(ValueError, match="history_s"):
            LagWindow(window_s=60, history_s=30)

    def test_json_names_statuses_and_lags(self) -> None:
        window = LagWindow(window_s=10, history_s=30, tables={"t.a": "a"})
        window.add(group(100.0, {("t.a", 0): part(4, 10, ts=90.0, owned=False)}, members=0, dlq=2))
        body = window.evaluate().to_json()  # type: ignore[union-attr]  # a window holding samples has a verdict
        assert body["status"] == "STOP" and body["members"] == 0 and body["dead_letter_records"] == 2
        assert body["offset_lag"] == 6 and body["time_lag_s"] == 10.0
        assert body["partitions"][0] == {
            "topic": "t.a",
            "partition": 0,
            "table": "a",
            "status": "STOP",
            "reason": "no consumer owns the partition",
            "offset_lag": 6,
            "time_lag_s": 10.0,
            "committed_offset": 4,
            "log_end_offset": 10,
        }
        assert body["tables"] == [{"table": "a", "topic": "t.a", "status": "STOP", "offset_lag": 6, "time_lag_s": 10.0}]


class TestHistory:
    def test_series_are_aligned_and_rates_come_from_committed_offsets(self) -> None:
        samples = [
            group(0, {("t.a", 0): part(0, 10, ts=0.0), ("t.a", 1): part(0, 0)}, dlq=0),
            group(2, {("t.a", 0): part(6, 12, ts=1.0), ("t.a", 1): part(2, 4, ts=1.5)}, dlq=1),
            group(4, {("t.a", 0): part(12, 12)}, dlq=1),
        ]
        body = history_json(samples, {"t.a": "a"})
        assert body["times"] == [0, 2, 4] and body["dead_letter_records"] == [0, 1, 1]
        (table,) = body["tables"]
        assert table["table"] == "a"
        assert table["offset_lag"] == [10, 8, 0]
        assert table["time_lag_s"] == [0.0, 1.0, 0.0]
        assert table["apply_rate"] == [None, 4.0, 3.0]
        p1 = body["partitions"][1]
        assert p1["partition"] == 1 and p1["offset_lag"] == [0, 2, None]
