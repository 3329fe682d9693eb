"""Consumer service: Kafka -> compact per key -> COPY + version-guarded merge -> PostgreSQL.

Modules, in the order a message meets them: `service` (Kafka loop, life cycle), `decode`
(envelope → staged row), `batch` (compaction, grouping, bisection plan), `worker` (apply thread,
retries), `apply` (one transaction per batch), `statements` (its SQL), `dead_letters`,
`classify` (transient / poison / fatal) and `metrics`; its HTTP endpoints are
`observability.endpoints`.
"""
