"""Consumer service: Kafka -> per partition: compact per key -> COPY + version-guarded merge -> PostgreSQL.

Modules, in the order a message meets them: `service` (Kafka loop, life cycle, rebalances),
`assignment` (which partitions we hold, under which claim), `claims` (claiming partitions in
PostgreSQL: fencing), `batch` (a partition's batch: compaction, staging, bisection plan),
`columnar` (one-pass Arrow decoding of regular batches) and `decode` (message by message, for
the rest), `worker` (apply lanes, retries), `apply` (one fenced transaction per batch),
`statements` (its SQL), `dead_letters` (the sink), `dead_letter_replay` (`lakesync
dead-letters`), `classify` (transient / poison / fatal), `errors` and `metrics`; its HTTP
endpoints are `observability.endpoints`.
"""
