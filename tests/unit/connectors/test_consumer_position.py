"""Counting what the consumer still has to apply."""

from connectors.consumer_position import behind


def test_behind_sums_missing_messages_and_ignores_partitions_ahead() -> None:
    assert behind({0: 10, 1: 5, 2: 0}, {0: 7, 1: 9}) == 3


def test_a_partition_never_applied_counts_from_zero() -> None:
    assert behind({0: 4}, {}) == 4


def test_caught_up_is_zero() -> None:
    assert behind({0: 4, 1: 2}, {0: 4, 1: 2}) == 0
