"""Claim bookkeeping: tokens, positions, revokes and re-claims, on plain data."""

from __future__ import annotations

import pytest

from lakesync.config import load_settings
from streaming.consumer.assignment import Assignment
from streaming.consumer.service import consumer_config, group_instance_id

TP0, TP1 = ("lakesync.people", 0), ("lakesync.people", 1)


def test_a_partition_is_read_only_once_claimed_and_batches_follow_each_other() -> None:
    assignment = Assignment("host:1")
    [request] = assignment.claim([TP0, TP1])
    assert request.partitions == (0, 1) and request.token.startswith("host:1/")
    assert assignment.take(TP0, 10) is None and assignment.ready() == []
    assert list(assignment.claimed(request, {0: 5, 1: 0})) == [(TP0, 5), (TP1, 0)]
    first = assignment.take(TP0, 10)
    second = assignment.take(TP0, 12)
    assert (first.expected_offset, second.expected_offset) == (5, 10)  # type: ignore[union-attr]  # take() returns the ownership of a claimed partition
    assert first.token == second.token == request.token  # type: ignore[union-attr]  # take() returns the ownership of a claimed partition


def test_claiming_again_retires_the_old_token_and_ignores_its_late_result() -> None:
    """After a fenced or abandoned batch: a new token, so nothing read under the old one commits."""
    assignment = Assignment("host:1")
    [old] = assignment.claim([TP0])
    list(assignment.claimed(old, {0: 3}))
    [new] = assignment.claim([TP0])
    assert new.token != old.token and not assignment.is_current(TP0, old.token)
    assert list(assignment.claimed(old, {0: 3})) == []  # a stale result changes nothing
    assert list(assignment.claimed(new, {0: 7})) == [(TP0, 7)]


def test_a_revoked_partition_forgets_its_claim() -> None:
    assignment = Assignment("host:1")
    [request] = assignment.claim([TP0])
    assert assignment.revoke([TP0, TP1]) == {request.token}
    assert TP0 not in assignment and list(assignment.claimed(request, {0: 1})) == []


def test_static_membership_defaults_to_the_host_name_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "pod-7")
    settings = load_settings(None)
    assert group_instance_id(settings, []) == "pod-7"
    assert group_instance_id(settings, ["b", "a"]) == group_instance_id(settings, ["a", "b"]) != "pod-7"
    config = consumer_config(settings, "pod-7")
    assert config["group.instance.id"] == "pod-7"
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    dynamic = load_settings(None, consumer={"group_instance_id": ""})
    assert group_instance_id(dynamic, []) is None
    assert "group.instance.id" not in consumer_config(dynamic, None)
