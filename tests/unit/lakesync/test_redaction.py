"""Secrets are recognized by name, masked in maps at any depth, and scrubbed from text."""

from __future__ import annotations

import pytest

from lakesync.redaction import MASK, is_secret_name, mask_mapping, scrub


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "sasl.password",
        "ssl.key.password",
        "spark.ssl.keyPassword",
        "fs.s3a.secret.key",
        "spark.hadoop.fs.s3a.access.key",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.token.endpoint.url",
        "spark.hadoop.fs.azure.account.key.lake.dfs.core.windows.net",
        "google.cloud.auth.service.account.json.credentials",
        "SASL_PASSWORD",
    ],
)
def test_names_that_say_secret_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["bootstrap.servers", "acks", "spark.sql.shuffle.partitions", "client.id"])
def test_ordinary_names_are_not(name: str) -> None:
    assert not is_secret_name(name)


def test_mask_mapping_masks_at_any_depth_and_keeps_the_rest() -> None:
    masked = mask_mapping({"acks": "all", "sasl.password": "p", "nested": {"deeper": [{"token": "t", "n": 1}]}})
    assert masked == {"acks": "all", "sasl.password": MASK, "nested": {"deeper": [{"token": MASK, "n": 1}]}}


def test_scrub_replaces_every_known_value_longest_first() -> None:
    text = "login with hunter2hunter2 failed; hunter2 again"
    assert scrub(text, ["hunter2", "hunter2hunter2"]) == f"login with {MASK} failed; {MASK} again"


def test_scrub_leaves_very_short_values_alone() -> None:
    """A one-letter "secret" would garble every line; such values are not scrubbed."""
    assert scrub("a b c", ["a"]) == "a b c"
