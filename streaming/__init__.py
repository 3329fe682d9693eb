"""The incremental path: Delta change feed -> Kafka (Spark job) and Kafka -> PostgreSQL (consumer)."""
