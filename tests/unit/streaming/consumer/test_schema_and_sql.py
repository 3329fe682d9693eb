"""Planning target tables and building the batch SQL: pure, no database."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from changes.type_mapping import TargetColumn
from connectors.errors import SchemaMismatchError
from connectors.postgres_schema import (
    ExistingTable,
    TablePlan,
    TableRef,
    _column_definition,
    allowed_type,
    normalize_type,
    plan_table,
    tombstone_table_name,
)
from lakesync.config import load_settings
from lakesync.errors import ConfigError
from streaming.consumer import statements
from streaming.consumer.decode import Shape

REF = TableRef("public", "people")
COLUMNS = [TargetColumn("id", "bigint"), TargetColumn("name", "text"), TargetColumn("at", "timestamptz")]
BOOKKEEPING = {"_lakesync_version": "bigint", "_lakesync_commit_ts": "timestamptz"}


def plan(existing: ExistingTable | None, columns: Sequence[TargetColumn] = COLUMNS, **flags: bool) -> TablePlan:
    options = {"auto_create": True, "add_columns": True, **flags}
    return plan_table(existing, columns, ["id"], ref=REF, name="people", **options)


def test_a_missing_table_is_created_unless_auto_create_is_off() -> None:
    assert plan(None).create
    refused = plan(None, auto_create=False)
    assert not refused.create and "auto_create_tables is off" in refused.problems[0]


def test_new_columns_are_added_or_refused_by_the_toggle() -> None:
    existing = ExistingTable({"id": "bigint", "name": "text", **BOOKKEEPING}, ("id",))
    assert [c.name for c in plan(existing).add] == ["at"] and not plan(existing).problems
    refused = plan(existing, add_columns=False)
    assert not refused.add and "add_columns is off" in refused.problems[0]


def test_type_and_key_mismatches_name_the_fix() -> None:
    existing = ExistingTable({"id": "bigint", "name": "integer", "at": "timestamptz", **BOOKKEEPING}, ("name",))
    problems = " ".join(plan(existing).problems)
    assert "people.name is integer but the source now sends text" in problems
    assert "primary key (name)" in problems and "lakesync rebuild --table people" in problems


def test_a_table_without_bookkeeping_columns_is_not_ours() -> None:
    existing = ExistingTable({"id": "bigint", "name": "text", "at": "timestamptz"}, ("id",))
    assert any("_lakesync_version" in p for p in plan(existing).problems)


def test_format_type_spellings_normalize_to_envelope_types() -> None:
    assert normalize_type("timestamp with time zone") == "timestamptz"
    assert normalize_type("timestamp without time zone") == "timestamp"
    assert normalize_type("numeric(10, 2)") == "numeric(10,2)"


def test_types_outside_the_vocabulary_never_reach_ddl() -> None:
    with pytest.raises(SchemaMismatchError):
        _column_definition(TargetColumn("x", "text); DROP TABLE people; --"))


def test_types_outside_the_vocabulary_never_reach_batch_statements() -> None:
    """A second guard behind the decoder's: the statements refuse what the allow-list refuses."""
    shape = Shape((TargetColumn("id", "bigint"), TargetColumn("x", "text); DROP TABLE people; --")), 1)
    with pytest.raises(ValueError, match="vocabulary"):
        statements.create_stage("stage", shape)
    key_shape = Shape((TargetColumn("id", "int8"),), 1)
    with pytest.raises(ValueError, match="vocabulary"):
        statements.any_key_known(REF, key_shape)


@pytest.mark.parametrize(
    ("given", "allowed"),
    [
        ("numeric(12, 2)", "numeric(12,2)"),
        ("NUMERIC(1000,0)", "numeric(1000,0)"),
        ("Double  Precision", "double precision"),
    ],
)
def test_the_allow_list_normalizes_what_it_accepts(given: str, allowed: str) -> None:
    assert allowed_type(given) == allowed


def test_tombstone_table_names_fit_postgres_limits_and_stay_distinct() -> None:
    assert tombstone_table_name(REF) == "tombstones:public.people"
    long_a, long_b = TableRef("s", "a" * 70), TableRef("s", "a" * 69 + "b")
    assert len(tombstone_table_name(long_a).encode()) <= 63
    assert tombstone_table_name(long_a) != tombstone_table_name(long_b)


def test_upsert_guards_compare_positions_of_the_one_order() -> None:
    """Stream upserts rank as images and repairs as repairs, against rows (images) and tombstones (deletes)."""
    shape = Shape((TargetColumn("id", "bigint"), TargetColumn("blob", "bytea")), 1)
    stream = statements.upsert(REF, "stage", shape, repair=False).as_string(None)
    repair = statements.upsert(REF, "stage", shape, repair=True).as_string(None)
    assert '(EXCLUDED."_lakesync_version", 1) > (t."_lakesync_version", 1)' in stream
    assert '(s."_lakesync_version", 1) > (d."_lakesync_version", 0)' in stream
    assert '(EXCLUDED."_lakesync_version", 2) >= (t."_lakesync_version", 1)' in repair
    assert "decode(s.\"blob\", 'base64')" in stream
    assert '"lakesync"."tombstones:public.people"' in stream


def test_staging_stages_bytea_as_text() -> None:
    shape = Shape((TargetColumn("id", "bigint"), TargetColumn("blob", "bytea")), 1)
    ddl = statements.create_stage("stage", shape).as_string(None)
    assert '"blob" text' in ddl and "ON COMMIT DELETE ROWS" in ddl


def test_a_batch_locks_its_partition_row_first_and_advances_it_last() -> None:
    """The fence: FOR UPDATE on the partition's offsets row; the claim writes the owner, never the offset."""
    lock, lock_params = statements.lock_offset("g", ("t", 1))
    assert "FOR UPDATE" in lock.as_string(None) and lock_params == ("g", "t", 1)
    advance, params = statements.advance_offset("g", ("t", 1), 42)
    assert advance.as_string(None).startswith("UPDATE") and params == (42, "g", "t", 1)
    claim, claim_params = statements.claim_partitions("g", "t", [2, 0], "host:1/abc")
    text = claim.as_string(None)
    assert "SET owner = EXCLUDED.owner," in text and "next_offset =" not in text.split("DO UPDATE")[1]
    assert claim_params == ("g", "t", "host:1/abc", [0, 2])


def test_consumer_settings_defaults_and_validation() -> None:
    settings = load_settings(None)
    assert settings.consumer.group_id == "lakesync" and settings.consumer.http_port == 0
    with pytest.raises(ConfigError, match=r"consumer\.shutdown_grace_s"):
        load_settings(None, consumer={"shutdown_grace_s": 20})
    with pytest.raises(ConfigError, match="retry_max_backoff_s"):
        load_settings(None, consumer={"retry_initial_backoff_s": 5, "retry_max_backoff_s": 1})
