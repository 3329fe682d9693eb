"""Spark job: Delta change data feed -> collapse -> hash diff against the state snapshot -> Kafka."""
