"""Helpers shared by test packages (real services, no fixtures)."""
