"""Consumer tests' helpers: envelopes on real topics, settings for one table, the CLI in a subprocess."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Producer
from psycopg import sql

from changes.envelope import ChangeEvent, Op, encode_event, tombstone_headers
from changes.type_mapping import TargetColumn
from connectors.kafka import CHANGE_TOPIC_CONFIG, ensure_topics, producer_config
from connectors.kafka_messages import produced_headers
from lakesync.config import LakesyncSettings

COLUMNS = (TargetColumn("id", "bigint"), TargetColumn("name", "text"), TargetColumn("price", "numeric(10,2)"))
COMMIT_TS = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
Message = tuple[bytes, bytes | None, list[tuple[str, bytes]]]


def upsert(
    table: str,
    key: int,
    version: int,
    *,
    name: str | None = None,
    price: str = "1.00",
    columns: Sequence[TargetColumn] = COLUMNS,
    batch_id: int = 0,
    extra: dict[str, Any] | None = None,
) -> Message:
    after = {"id": key, "name": name if name is not None else f"v{version}", "price": price, **(extra or {})}
    event = ChangeEvent(
        op=Op.UPSERT,
        table=table,
        key=(key,),
        key_names=("id",),
        version=version,
        after=after,
        columns=tuple(columns),
        commit_ts=COMMIT_TS,
        batch_id=batch_id,
        source="/lake/x",
    )
    return encode_event(event)


def delete(table: str, key: int, version: int, *, batch_id: int = 0, with_tombstone: bool = True) -> list[Message]:
    event = ChangeEvent(
        op=Op.DELETE,
        table=table,
        key=(key,),
        key_names=("id",),
        version=version,
        columns=COLUMNS,
        commit_ts=COMMIT_TS,
        batch_id=batch_id,
        source="/lake/x",
    )
    k, v, h = encode_event(event)
    messages: list[Message] = [(k, v, h)]
    if with_tombstone:
        messages.append(tombstone(table, key, version))
    return messages


def tombstone(table: str, key: int, version: int) -> Message:
    return json.dumps({"id": key}, separators=(",", ":")).encode(), None, tombstone_headers(table, version, ["bigint"])


def make_settings(
    settings: LakesyncSettings, name: str, *, group: str | None = None, **consumer: Any
) -> LakesyncSettings:
    """The session settings with one table `name` (topic lakesync.<name>, target public.<name>)."""
    data = settings.model_dump()
    data["postgres"]["password"] = settings.postgres.password.get_secret_value() if settings.postgres.password else None
    data["postgres"]["pool_timeout_s"] = 5.0
    data["tables"] = [{"name": name, "source_path": f"/lake/{name}", "target_table": name, "key_columns": ["id"]}]
    data["consumer"] = {
        "group_id": group or f"g-{name}",
        "batch_max_wait_s": 0.2,
        "retry_deadline_s": 120.0,
        "retry_max_backoff_s": 2.0,
        "session_timeout_s": 6.0,
        **consumer,
    }
    return LakesyncSettings(**data)


def create_topic(settings: LakesyncSettings, topic: str) -> None:
    ensure_topics(settings.kafka, [topic], config=CHANGE_TOPIC_CONFIG)


def produce(settings: LakesyncSettings, topic: str, messages: Sequence[Message]) -> None:
    producer = Producer(producer_config(settings.kafka))
    for key, value, headers in messages:
        producer.produce(topic, key=key, value=value, headers=produced_headers(headers))
        producer.poll(0)
    assert producer.flush(30) == 0


def rows(
    settings: LakesyncSettings, table: str, columns: str = "id, name, price, _lakesync_version"
) -> list[tuple[Any, ...]]:
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        query = sql.SQL("SELECT {} FROM {} ORDER BY id").format(sql.SQL(columns), sql.Identifier("public", table))
        return conn.execute(query).fetchall()


def start_cli(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESYNC_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lakesync", "--log-format", "json", "--config", str(config), "consume", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
