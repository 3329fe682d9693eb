"""Fixtures of the consumer tests (helpers: tests/support/consumer_topics.py)."""

from __future__ import annotations

import pytest

from lakesync.config import LakesyncSettings
from tests.support.consumer_topics import create_topic, make_settings


@pytest.fixture
def table_settings(settings: LakesyncSettings, unique_name: str) -> LakesyncSettings:
    consumer_settings = make_settings(settings, unique_name)
    create_topic(consumer_settings, f"lakesync.{unique_name}")
    return consumer_settings
