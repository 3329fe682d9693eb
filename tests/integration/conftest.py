"""Fixtures shared by the integration tests (defined in tests/support)."""

from tests.support.pipeline import pipeline

__all__ = ["pipeline"]
