"""Kafka reachable with the configured address, security settings and credentials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, TopicMetadata

from lakesync.config import KafkaSettings
from lakesync.errors import AccessRefusedError, ConfigError, ServiceUnreachableError
from lakesync.logs import KafkaLogBridge
from lakesync.preflight.findings import Finding, fail, ok

# Error codes meaning the brokers answered and said no (credentials, TLS, ACLs).
_REFUSED = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    }
)


def check_kafka(kafka: KafkaSettings, topics: Sequence[str], *, timeout_s: float = 5.0) -> list[Finding]:
    """The brokers answer a metadata request; which of `topics` exist already."""
    subject = f"Kafka at {kafka.bootstrap_servers}"
    try:
        # quiet: librdkafka's reconnect lines go to DEBUG; the failure is reported once, here.
        config: dict[str, Any] = {
            **kafka.client_config(),
            "logger": KafkaLogBridge(quiet=True),
        }  # a logger object is allowed
        admin = AdminClient(config)
    except KafkaException as exc:  # an unknown or malformed client property
        return [fail(subject, f"bad client property: {exc.args[0].str()}", "fix kafka.client_properties", ConfigError)]
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        return [_failure(subject, exc.args[0], timeout_s)]
    finally:
        admin.poll(0)  # serve the queued log lines (to DEBUG)
    if not metadata.brokers:
        return [_failure(subject, KafkaError(KafkaError._TRANSPORT, "no brokers in the metadata"), timeout_s)]
    found = [ok(subject, f"{len(metadata.brokers)} broker(s) answer")]
    return found + [_topic(name, metadata.topics) for name in topics]


def _topic(name: str, existing: Mapping[str, TopicMetadata]) -> Finding:
    if name in existing:
        partitions = len(existing[name].partitions)
        return ok(f"topic {name}", f"exists ({partitions} partitions)")
    return ok(f"topic {name}", "absent; created (compacted) when stream or consume starts")


def _failure(subject: str, error: KafkaError, timeout_s: float) -> Finding:
    if error.code() in _REFUSED:
        return fail(
            subject,
            f"refused lakesync: {error.str()}",
            "check kafka.security_protocol, the sasl_* and ssl_* settings and the brokers' ACLs",
            AccessRefusedError,
        )
    return fail(
        subject,
        f"unreachable, no answer within {timeout_s:.0f} s ({error.str()})",
        "check kafka.bootstrap_servers and kafka.security_protocol, and that the brokers run and are reachable from here",
        ServiceUnreachableError,
    )
