"""`lakesync dead-letters`: list what the consumer set aside, replay it after a fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lakesync.config import LakesyncSettings
from tests.support.config_file import write_config
from tests.support.consumer_run import run_until_caught_up
from tests.support.consumer_topics import produce, rows, upsert

pytestmark = pytest.mark.integration


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "lakesync", "--config", str(config), "dead-letters", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def listed(config: Path, table: str) -> list[dict[str, Any]]:
    result = cli(config, "list", "--json", "--table", table)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_refused_records_are_listed_and_replayed_after_the_fix(
    table_settings: LakesyncSettings, tmp_path: Path
) -> None:
    """A CHECK constraint refuses two rows (23514); after dropping it, a replay applies the one no newer
    change superseded, and leaves the other key at its newer version."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    config = write_config(tmp_path / "lakesync.toml", table_settings)
    produce(table_settings, topic, [upsert(name, 1, 1)])
    run_until_caught_up(table_settings, topic)
    with psycopg.connect(**table_settings.postgres.connection_kwargs()) as conn:
        conn.execute(f'ALTER TABLE public."{name}" ADD CONSTRAINT positive CHECK (price > 0)')
    refused = [upsert(name, 20, 1, price="-1.00"), upsert(name, 21, 1, price="-2.00")]
    produce(table_settings, topic, [upsert(name, 2, 1), *refused, upsert(name, 3, 1)])
    run_until_caught_up(table_settings, topic)
    assert [r[0] for r in rows(table_settings, name)] == [1, 2, 3]

    letters = listed(config, name)
    assert len(letters) == 2 and {x["error_class"] for x in letters} == {"CheckViolation"}
    assert {x["sqlstate"] for x in letters} == {"23514"} and {x["table"] for x in letters} == {name}
    assert all(x["topic"] == topic and x["offset"] is not None and x["stage"] == "consume" for x in letters)
    table_view = cli(config, "list", "--table", name)
    assert table_view.returncode == 0 and "CheckViolation" in table_view.stdout and "23514" in table_view.stdout

    with psycopg.connect(**table_settings.postgres.connection_kwargs()) as conn:
        conn.execute(f'ALTER TABLE public."{name}" DROP CONSTRAINT positive')
    produce(table_settings, topic, [upsert(name, 21, 3, name="newer")])
    dry = cli(config, "replay", "--all", "--table", name, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("would replay") == 2, dry.stderr
    replayed = cli(config, "replay", *[x["id"] for x in letters])
    assert replayed.returncode == 0 and "replayed 2 record(s)" in replayed.stdout, replayed.stderr
    run_until_caught_up(table_settings, topic)
    got = {r[0]: r for r in rows(table_settings, name)}
    assert got[20] == (20, "v1", Decimal("-1.00"), 1)
    assert got[21] == (21, "newer", Decimal("1.00"), 3)  # the replayed version 1 was stale: skipped


def test_an_unknown_id_is_refused_with_one_line(table_settings: LakesyncSettings, tmp_path: Path) -> None:
    config = write_config(tmp_path / "lakesync.toml", table_settings)
    result = cli(config, "replay", "99:123456789")
    assert result.returncode == 1 and result.stderr.startswith("lakesync: error: no dead letter 99:123456789")
    both = cli(config, "replay", "0:1", "--all")
    assert both.returncode == 2
