"""Observability: lag evaluation (`lag`), lag metrics, the lag monitor, HTTP endpoints and the built-in page.

`lag` is pure logic (plain data in, statuses out); the rest wires it to Kafka, Prometheus and HTTP.
"""
