"""The partitions this consumer holds: under which claim, and where each one stands (pure bookkeeping).

A partition Kafka assigns is *claiming* until PostgreSQL has recorded our claim and returned its
stored offset (claims.py); then it is *ready* and `position` is the next offset PostgreSQL will
hold once every batch handed over so far commits. Each batch takes the claim's token and the
position it must find in PostgreSQL (`take`), and moves the position past itself.

Whenever that position becomes uncertain — a batch fenced or abandoned — the partition is claimed
again: a new token (so batches read under the old one can never commit), and the stored offset
read afresh. Only the Kafka thread changes this state; apply threads only ask `is_current`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from streaming.consumer.batch import Ownership

TopicPartition = tuple[str, int]


@dataclass
class PartitionState:
    token: str
    # None while the claim is pending.
    position: int | None = None


@dataclass(frozen=True)
class ClaimRequest:
    """Partitions of one topic to claim under one token."""

    topic: str
    partitions: tuple[int, ...]
    token: str


class Assignment:
    """Partition → claim state, for one consumer (`owner` names it in PostgreSQL)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._states: dict[TopicPartition, PartitionState] = {}

    def __contains__(self, tp: object) -> bool:
        return tp in self._states

    def __len__(self) -> int:
        return len(self._states)

    def partitions(self) -> list[TopicPartition]:
        return sorted(self._states)

    def ready(self) -> list[TopicPartition]:
        return sorted(tp for tp, state in self._states.items() if state.position is not None)

    def is_ready(self, tp: TopicPartition) -> bool:
        state = self._states.get(tp)
        return state is not None and state.position is not None

    def claim(self, tps: Iterable[TopicPartition]) -> list[ClaimRequest]:
        """Start (or restart) claiming: one fresh token per topic, positions unknown until claimed."""
        by_topic: dict[str, list[int]] = {}
        for topic, partition in tps:
            by_topic.setdefault(topic, []).append(partition)
        requests = []
        for topic, partitions in sorted(by_topic.items()):
            token = f"{self.owner}/{uuid.uuid4().hex[:12]}"
            for partition in partitions:
                self._states[(topic, partition)] = PartitionState(token)
            requests.append(ClaimRequest(topic, tuple(sorted(partitions)), token))
        return requests

    def claimed(self, request: ClaimRequest, offsets: dict[int, int]) -> Iterator[tuple[TopicPartition, int]]:
        """Partitions that are ready now, with their stored offsets (stale or revoked claims skipped)."""
        for partition, offset in sorted(offsets.items()):
            state = self._states.get((request.topic, partition))
            if state is not None and state.token == request.token and state.position is None:
                state.position = offset
                yield (request.topic, partition), offset

    def revoke(self, tps: Iterable[TopicPartition]) -> set[str]:
        """Forget the partitions; returns their tokens (claims in flight under them are moot)."""
        return {state.token for tp in tps if (state := self._states.pop(tp, None)) is not None}

    def take(self, tp: TopicPartition, next_offset: int) -> Ownership | None:
        """The ownership a batch ending before `next_offset` is applied under; None if not ready."""
        state = self._states.get(tp)
        if state is None or state.position is None:
            return None
        ownership = Ownership(state.token, state.position)
        state.position = next_offset
        return ownership

    def is_current(self, tp: TopicPartition, token: str) -> bool:
        """Is `token` still the claim we hold on `tp` (safe to ask from any thread)?"""
        state = self._states.get(tp)
        return state is not None and state.token == token
