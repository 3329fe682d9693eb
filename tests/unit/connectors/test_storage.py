"""Locations are local paths or Hadoop URIs, and both join the same way."""

from __future__ import annotations

from pathlib import Path

from connectors.storage import absolute, is_uri, join


def test_uris_are_told_from_paths() -> None:
    assert is_uri("s3a://bucket/state") and is_uri("file:///tmp/x") and is_uri("hdfs://nn:8020/x")
    assert not is_uri("/var/lib/state") and not is_uri(".lakesync/state") and not is_uri("s3a:/folded")


def test_a_relative_path_is_made_absolute_and_a_uri_is_left_alone() -> None:
    assert absolute(".lakesync/state") == str(Path.cwd() / ".lakesync" / "state")
    assert absolute("s3a://bucket/state/") == "s3a://bucket/state/"


def test_join_neither_doubles_nor_drops_slashes() -> None:
    assert join("s3a://bucket/", "people", "checkpoint") == "s3a://bucket/people/checkpoint"
    assert join("s3a://bucket/state", "/people/") == "s3a://bucket/state/people"
    assert join("/var/lib/state", "people") == "/var/lib/state/people"
