"""Lag gauges: set from a verdict, departed partitions removed, no negative values."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from observability.lag import GroupLag, GroupSample, LagWindow, PartitionSample
from observability.lag_metrics import LagExporter
from streaming.publisher.metrics import version_lag


def verdict(group: str, parts: dict[tuple[str, int], PartitionSample], members: int = 1) -> GroupLag:
    window = LagWindow(window_s=10, history_s=10)
    window.add(GroupSample(100.0, group, members, parts, dead_letter_records=3))
    lag = window.evaluate()
    assert lag is not None  # a window holding a sample has a verdict
    return lag


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_follow_the_verdict_and_departed_partitions_disappear() -> None:
    group = f"g-{uuid.uuid4().hex[:6]}"
    exporter = LagExporter("dlq")
    both = {
        ("t", 0): PartitionSample(0, 10, 4, oldest_unapplied_ts=90.0, owned=False),
        ("t", 1): PartitionSample(0, 5, 5, owned=False),
    }
    exporter.export(verdict(group, both, members=0))
    assert value("lakesync_consumer_group_lag", group=group, topic="t", partition="0") == 6
    assert value("lakesync_consumer_group_lag_seconds", group=group, topic="t", partition="0") == 10.0
    assert value("lakesync_consumer_group_partition_status", group=group, topic="t", partition="0") == 3  # STOP
    assert value("lakesync_consumer_group_status", group=group) == 3
    assert value("lakesync_consumer_group_members", group=group) == 0
    assert value("lakesync_dead_letter_topic_records", topic="dlq") == 3

    exporter.export(verdict(group, {("t", 1): PartitionSample(0, 5, 5, owned=True)}))
    for name in (
        "lakesync_consumer_group_lag",
        "lakesync_consumer_group_lag_seconds",
        "lakesync_consumer_group_committed_offset",
        "lakesync_consumer_group_partition_status",
    ):
        assert value(name, group=group, topic="t", partition="0") is None, name
    assert value("lakesync_consumer_group_lag", group=group, topic="t", partition="1") == 0
    assert value("lakesync_consumer_group_status", group=group) == 0


def test_lag_is_never_negative_in_the_gauge() -> None:
    group = f"g-{uuid.uuid4().hex[:6]}"
    LagExporter().export(verdict(group, {("t", 0): PartitionSample(0, 10, 11)}))
    assert value("lakesync_consumer_group_lag", group=group, topic="t", partition="0") == 0


def test_delta_version_lag() -> None:
    """Latest version minus the newest published; before any batch, everything from the start."""
    assert version_lag(latest=12, published=9, starting_version=None) == 3
    assert version_lag(latest=12, published=None, starting_version=None) == 13
    assert version_lag(latest=12, published=None, starting_version=10) == 3
    assert version_lag(latest=5, published=7, starting_version=None) == 0
