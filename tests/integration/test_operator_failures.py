"""Every failure a user can cause, through the real CLI: one line on stderr, a documented exit code.

Each case runs `python -m lakesync` in a subprocess against the embedded Kafka and PostgreSQL and
real Delta tables, and asserts the line (what failed and the fix), the exit code, that no
traceback leaks, that no secret is printed and, for `stream`, that no topic was created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from psycopg import sql

from deploy.processes import free_port
from lakesync.config import LakesyncSettings
from tests.support.config_file import write_config

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "not-the-password-4711"


@dataclass(frozen=True)
class World:
    """Delta tables in every state a case needs, a PostgreSQL role without rights, the base settings."""

    base: LakesyncSettings
    lake: Path
    limited_user: str
    limited_password: str

    def settings(self, table: dict[str, Any] | None = None, **sections: dict[str, Any]) -> LakesyncSettings:
        data = self.base.model_dump()
        data["postgres"]["password"] = self.base.postgres.password.get_secret_value()  # type: ignore[union-attr]  # the session's settings carry a password
        name = "t" + uuid.uuid4().hex[:8]
        data["tables"] = [
            {
                "name": name,
                "source_path": str(self.lake / "good"),
                "target_table": name,
                "topic": f"ops.{name}",
                "key_columns": ["id"],
                **(table or {}),
            }
        ]
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return LakesyncSettings(**data)


@dataclass(frozen=True)
class Case:
    name: str
    command: tuple[str, ...]
    settings: Callable[[World], LakesyncSettings]
    exit_code: int
    says: tuple[str, ...]  # fragments of the one line: what failed and the fix
    env: dict[str, str] = field(default_factory=dict)
    # Found by preflight, before Spark starts: nothing may exist yet (no topic). Mapping
    # expressions only Spark can resolve fail after the job created its topics.
    preflight: bool = True


def _unreachable_kafka(world: World) -> LakesyncSettings:
    return world.settings(kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})


CASES = [
    Case(
        "bad config value",
        ("check-config",),
        lambda w: w.settings(),
        2,
        ("postgres.port", "valid integer"),
        env={"LAKESYNC_POSTGRES__PORT": "not-a-port"},
    ),
    Case(
        "kafka unreachable: stream",
        ("stream", "--once"),
        _unreachable_kafka,
        10,
        ("Kafka at 127.0.0.1:", "kafka.bootstrap_servers"),
    ),
    Case(
        "kafka unreachable: consume",
        ("consume",),
        _unreachable_kafka,
        10,
        ("Kafka at 127.0.0.1:", "kafka.bootstrap_servers"),
    ),
    Case(
        "kafka unreachable: lag",
        ("lag", "--window", "0"),
        _unreachable_kafka,
        10,
        ("Kafka at 127.0.0.1:", "kafka.bootstrap_servers"),
    ),
    Case(
        "postgres unreachable: consume",
        ("consume",),
        lambda w: w.settings(postgres={"port": free_port()}),
        10,
        ("PostgreSQL at 127.0.0.1:", "unreachable: connection refused", "postgres.port"),
    ),
    Case(
        "wrong postgres password: stream",
        ("stream", "--once"),
        lambda w: w.settings(postgres={"password": WRONG_PASSWORD}),
        11,
        ("refused user 'lakesync'", "password authentication failed", "postgres.password"),
    ),
    Case(
        "missing delta table: stream",
        ("stream", "--once"),
        lambda w: w.settings({"source_path": str(w.lake / "nowhere")}),
        12,
        ("no Delta table at", "nowhere", "tables.source_path"),
    ),
    Case(
        "change data feed off: stream",
        ("stream", "--once"),
        lambda w: w.settings({"source_path": str(w.lake / "no_cdf")}),
        12,
        ("change data feed is off", "SET TBLPROPERTIES (delta.enableChangeDataFeed = true)"),
    ),
    Case(
        "unknown key column: stream",
        ("stream", "--once"),
        lambda w: w.settings({"key_columns": ["person_id"]}),
        12,
        ("key column 'person_id' is not a column", "it has: id, name", "tables.key_columns"),
    ),
    Case(
        "unmappable type: stream",
        ("stream", "--once"),
        lambda w: w.settings({"source_path": str(w.lake / "variant")}),
        12,
        ("column 'payload' has type variant", "cast it in the table mapping"),
    ),
    Case(
        "unmappable cast: reconcile",
        ("reconcile", "--table", "{table}", "--no-wait"),
        lambda w: w.settings({"columns": [{"name": "id"}, {"name": "age", "source": "name", "cast": "interval day"}]}),
        12,
        ("column 'age' has type interval day", "cast it"),
    ),
    Case(
        "missing target schema: consume",
        ("consume",),
        lambda w: w.settings({"target_schema": "no_such_schema"}, consumer={"auto_create_tables": False}),
        12,
        ("schema 'no_such_schema' does not exist", "CREATE SCHEMA"),
    ),
    Case(
        "no right to create tables: consume",
        ("consume",),
        lambda w: w.settings(postgres={"user": w.limited_user, "password": w.limited_password}),
        11,
        ("may not create tables in schema public", "GRANT CREATE ON SCHEMA"),
    ),
    Case(
        "unknown column in a mapping expression: stream (found by Spark)",
        ("stream", "--once"),
        lambda w: w.settings({"columns": [{"name": "id"}, {"name": "loud", "expr": "upper(no_such_column)"}]}),
        12,
        ("UNRESOLVED_COLUMN", "no_such_column", "[[tables.columns]]"),
        preflight=False,
    ),
]


@pytest.fixture(scope="module")
def world(spark: Any, settings: LakesyncSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    lake = tmp_path_factory.mktemp("operator-lake")
    spark.sql(
        f"CREATE TABLE delta.`{lake / 'good'}` (id BIGINT NOT NULL, name STRING) USING delta "
        "TBLPROPERTIES (delta.enableChangeDataFeed = true)"
    )
    spark.sql(f"INSERT INTO delta.`{lake / 'good'}` VALUES (1, 'a'), (2, 'b')")
    spark.sql("SELECT 1L AS id, 'a' AS name").write.format("delta").save(str(lake / "no_cdf"))
    spark.sql("SELECT 1L AS id, parse_json('{\"a\": 1}') AS payload").write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(str(lake / "variant"))
    user, password = "limited_" + uuid.uuid4().hex[:8], uuid.uuid4().hex
    with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))
    try:
        yield World(settings, lake, user, password)
    finally:
        with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LAKESYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "lakesync", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, **(env or {})},
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_failure_is_one_line_with_its_exit_code(case: Case, world: World, tmp_path: Path) -> None:
    """The line names what failed and the fix; no traceback, no secret, no topic left behind."""
    settings = case.settings(world).model_copy(update={"state_dir": str(tmp_path / "state")})
    table = settings.tables[0]
    config = write_config(tmp_path / "lakesync.toml", settings)
    result = run_cli(config, *(arg.format(table=table.name) for arg in case.command), env=case.env)

    output = result.stdout + result.stderr
    assert result.returncode == case.exit_code, output[-3000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("lakesync: "), result.stderr[-3000:]
    for fragment in case.says:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in output and "\x00" not in output
    for secret in (world.base.postgres.password.get_secret_value(), WRONG_PASSWORD, world.limited_password):  # type: ignore[union-attr]  # the session's settings carry a password
        assert secret not in output
    if case.command[0] == "stream" and case.preflight:
        topics = AdminClient(world.base.kafka.client_config()).list_topics(timeout=10).topics
        assert table.topic_name not in topics, "a failed start created the topic"


def test_check_config_connect_lists_every_finding_and_exits_like_the_first_failure(
    world: World, tmp_path: Path
) -> None:
    """Two problems at once: both listed on stdout, the exit code is the first one's, in seconds."""
    settings = world.settings({"source_path": str(world.lake / "no_cdf"), "key_columns": ["person_id"]})
    config = write_config(tmp_path / "lakesync.toml", settings)
    result = run_cli(config, "check-config", "--connect")

    assert result.returncode == 12, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok") and "broker(s) answer" in line for line in lines)
    assert any(line.startswith("ok") and "accepts user 'lakesync'" in line for line in lines)
    assert any(line.startswith("FAIL") and "change data feed is off" in line for line in lines)
    assert lines[-1].endswith("failure(s)") and result.stderr == ""


def test_check_config_connect_passes_on_a_ready_world(world: World, tmp_path: Path) -> None:
    settings = world.settings()
    result = run_cli(write_config(tmp_path / "lakesync.toml", settings), "check-config", "--connect")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and "key column 'id' is NOT NULL at the source" in result.stdout


def test_a_healthy_stream_run_prints_only_lakesyncs_own_lines(world: World, tmp_path: Path) -> None:
    """No Spark or librdkafka warning, no JVM chatter: every stderr line is lakesync's JSON, below WARNING."""
    settings = world.settings().model_copy(update={"state_dir": str(tmp_path / "state")})
    result = run_cli(write_config(tmp_path / "lakesync.toml", settings), "--log-format", "json", "stream", "--once")

    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # a non-JSON line fails here
    assert [line for line in lines if line["level"] not in ("info", "debug")] == []
    assert {"stream started", "batch published", "stream finished"} <= {line["event"] for line in lines}
