"""Thin I/O to Delta (through Spark), Kafka and PostgreSQL."""
