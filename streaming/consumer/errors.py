"""Errors of the consumer service. Callers catch by meaning, never by message text."""

from __future__ import annotations

from lakesync.errors import LakesyncError, ServiceUnreachableError


class UnconvertibleValueError(LakesyncError):
    """A value of one record cannot be written to its staging column (a poison record)."""


class DeadLetterDeliveryError(LakesyncError):
    """The dead-letter topic did not acknowledge a record in time (transient: Kafka is retried)."""


class KafkaUnavailableError(ServiceUnreachableError):
    """The Kafka cluster cannot be reached at start-up."""


class BatchDroppedError(LakesyncError):
    """A batch was dropped without storing its offsets; whoever holds the partition reads it again."""


class BatchAbandonedError(BatchDroppedError):
    """A batch was given up on purpose (shutdown or rebalance); its offsets were not stored."""


class BatchFencedError(BatchDroppedError):
    """PostgreSQL holds another claim or another offset for the batch's partition: it is dropped."""


class ClaimAbandonedError(LakesyncError):
    """A partition claim was given up because the partition was revoked meanwhile."""


class DeadLetterReplayError(LakesyncError):
    """Dead letters could not be read, or a chosen one cannot be replayed."""
