"""Consumer service: Kafka -> compact per key -> COPY + version-guarded merge -> PostgreSQL."""
