"""What the topics lakesync creates demand of Kafka, so an acknowledged change is never lost."""

from __future__ import annotations

from connectors.kafka import durability_config, producer_config
from lakesync.config import KafkaSettings


def test_min_insync_replicas_is_two_where_there_are_replicas_enough() -> None:
    assert durability_config(KafkaSettings(topic_replication_factor=3))["min.insync.replicas"] == "2"
    assert durability_config(KafkaSettings(topic_replication_factor=1))["min.insync.replicas"] == "1"


def test_an_explicit_min_insync_replicas_is_kept_within_the_replication_factor() -> None:
    settings = KafkaSettings(topic_replication_factor=3, topic_min_insync_replicas=3)
    assert durability_config(settings)["min.insync.replicas"] == "3"
    capped = KafkaSettings(topic_replication_factor=2, topic_min_insync_replicas=3)
    assert durability_config(capped)["min.insync.replicas"] == "2"


def test_unclean_leader_election_is_off_unless_allowed() -> None:
    assert durability_config(KafkaSettings())["unclean.leader.election.enable"] == "false"
    allowed = KafkaSettings(topic_unclean_leader_election=True)
    assert durability_config(allowed)["unclean.leader.election.enable"] == "true"


def test_the_producer_waits_for_every_in_sync_replica() -> None:
    config = producer_config(KafkaSettings())
    assert config["acks"] == "all" and config["enable.idempotence"] == "true"
