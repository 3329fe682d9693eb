"""lakesync: keeps PostgreSQL tables exactly in step with Delta Lake tables, through Kafka."""

__version__ = "0.1.0"
