"""How the CLI turns any error into one line and an exit code; check-config prints no secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lakesync.cli import app, exit_code, one_line
from lakesync.errors import (
    AccessRefusedError,
    ConfigError,
    LakesyncError,
    NotReadyError,
    ServiceUnreachableError,
)
from lakesync.logs import register_secrets


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("x"), 2),
        (LakesyncError("x"), 1),
        (ServiceUnreachableError("x"), 10),
        (AccessRefusedError("x"), 11),
        (NotReadyError("x"), 12),
        (ValueError("x"), 1),
    ],
)
def test_each_error_class_has_its_documented_exit_code(error: BaseException, code: int) -> None:
    assert exit_code(error) == code


def test_errors_of_other_packages_are_classified_by_type() -> None:
    from connectors.errors import PostgresUnavailableError, UnsupportedTypeError
    from streaming.publisher.errors import SchemaChangeError, SourceError

    assert exit_code(SchemaChangeError("x")) == 3
    assert exit_code(SourceError("x")) == 12 and exit_code(UnsupportedTypeError("x")) == 12
    assert exit_code(PostgresUnavailableError("x")) == 10


def test_an_unforeseen_error_is_its_type_and_first_line_with_where_to_find_the_rest() -> None:
    line = one_line(RuntimeError("first\nsecond"))
    assert line.startswith("error: RuntimeError: first") and "second" not in line and "--log-level DEBUG" in line


def test_the_line_holds_no_control_character_and_no_known_secret() -> None:
    register_secrets(["pa55word-xyz"])
    line = one_line(LakesyncError("bad\x00plan for pa55word-xyz"))
    assert line == "error: bad plan for **********"


def test_check_config_masks_secrets_in_pass_through_maps(tmp_path: Path) -> None:
    config = tmp_path / "lakesync.toml"
    config.write_text(
        '[postgres]\npassword = "pg-secret-1"\n'
        '[kafka.client_properties]\n"sasl.password" = "kafka-secret-2"\n'
        '[spark.conf]\n"spark.hadoop.fs.s3a.secret.key" = "s3-secret-3"\n'
    )
    result = CliRunner().invoke(app, ["--config", str(config), "check-config"])
    assert result.exit_code == 0, result.output
    for secret in ("pg-secret-1", "kafka-secret-2", "s3-secret-3"):
        assert secret not in result.output
    assert '"sasl.password": "**********"' in result.output
