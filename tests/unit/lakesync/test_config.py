"""Configuration: typed, validated, file plus environment, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakesync.config import load_settings
from lakesync.errors import ConfigError

TABLE = {"name": "people", "source_path": "/lake/people", "target_table": "people", "key_columns": ["id"]}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lakesync.toml"
    path.write_text(text)
    return path


def test_file_values_are_read_and_environment_overrides_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file sets postgres.port; LAKESYNC_POSTGRES__PORT wins over it."""
    path = write(tmp_path, '[postgres]\nport = 6000\nhost = "db"\n')
    monkeypatch.setenv("LAKESYNC_POSTGRES__PORT", "7000")
    loaded = load_settings(path)
    assert loaded.postgres.port == 7000
    assert loaded.postgres.host == "db"


def test_tables_are_read_from_array_of_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[tables]]\nname = "people"\nsource_path = "/lake/people"\ntarget_table = "people"\nkey_columns = ["id"]\n',
    )
    table = load_settings(path).table("people")
    assert table.key_columns == ["id"]
    assert table.topic_name == "lakesync.people"
    assert table.target_schema == "public"


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"postgres\.port: Input should be a valid integer"):
        load_settings(write(tmp_path, '[postgres]\nport = "five"\n'))


def test_unknown_key_is_a_typo_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_server: Extra inputs are not permitted"):
        load_settings(write(tmp_path, '[kafka]\nbootstrap_server = "x"\n'))


def test_error_never_shows_a_secret_value(tmp_path: Path) -> None:
    """Values are left out of errors, since the bad value might be the password."""
    path = write(tmp_path, '[postgres]\npassword = ["hunter2"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "postgres.password" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_secrets_are_masked_in_dumps_and_revealed_only_for_clients() -> None:
    loaded = load_settings(
        None,
        postgres={"password": "hunter2"},
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "svc",
            "sasl_password": "s3cret",
        },
    )
    dumped = loaded.model_dump_json() + repr(loaded)
    assert "hunter2" not in dumped and "s3cret" not in dumped
    assert loaded.postgres.connection_kwargs()["password"] == "hunter2"
    assert loaded.postgres.jdbc_properties()["password"] == "hunter2"
    client = loaded.kafka.client_config()
    assert client["sasl.password"] == "s3cret"
    assert client["security.protocol"] == "SASL_SSL"


def test_sasl_without_mechanism_is_rejected() -> None:
    with pytest.raises(ConfigError, match="sasl_mechanism is required"):
        load_settings(None, kafka={"security_protocol": "SASL_SSL"})


def test_tls_settings_pass_through(tmp_path: Path) -> None:
    loaded = load_settings(
        None,
        postgres={"sslmode": "verify-full", "sslrootcert": str(tmp_path / "ca.pem")},
        kafka={"security_protocol": "SSL", "ssl_ca_location": str(tmp_path / "ca.pem")},
    )
    assert loaded.postgres.connection_kwargs()["sslmode"] == "verify-full"
    assert loaded.postgres.jdbc_properties()["sslrootcert"] == str(tmp_path / "ca.pem")
    assert loaded.kafka.client_config()["ssl.ca.location"] == str(tmp_path / "ca.pem")


def test_bad_sslmode_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"postgres\.sslmode"):
        load_settings(None, postgres={"sslmode": "sometimes"})


def test_jdbc_fetch_size_is_always_positive() -> None:
    """pgJDBC buffers whole results without a fetch size, so zero is refused."""
    assert load_settings(None).postgres.jdbc_properties()["fetchsize"] == "10000"
    with pytest.raises(ConfigError, match=r"postgres\.jdbc_fetch_size"):
        load_settings(None, postgres={"jdbc_fetch_size": 0})


def test_table_needs_exactly_one_source() -> None:
    both = {**TABLE, "source_table": "main.people"}
    with pytest.raises(ConfigError, match=r"tables\.0: Value error, set exactly one of source_path or source_table"):
        load_settings(None, tables=[both])


def test_duplicate_table_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match="repeated: people"):
        load_settings(None, tables=[TABLE, TABLE])


def test_unknown_table_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: people"):
        load_settings(None, tables=[TABLE]).table("persons")


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lakesync\.toml"):
        load_settings(write(tmp_path, "[kafka\n"))


def test_pool_bounds_are_checked() -> None:
    with pytest.raises(ConfigError, match="pool_max_size must be greater or equal than pool_min_size"):
        load_settings(None, postgres={"pool_min_size": 5, "pool_max_size": 2})


def test_secret_files_set_nested_keys_below_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file named like the variable in $LAKESYNC_SECRETS_DIR sets the key; the environment still wins."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "LAKESYNC_POSTGRES__PASSWORD").write_text("s3cret\n")
    (secrets / "LAKESYNC_KAFKA__SASL_PASSWORD").write_text("k-pass")
    (secrets / "postgres_password").write_text("another service's secret")  # not ours: ignored
    config = tmp_path / "lakesync.toml"
    config.write_text('[postgres]\nhost = "db"\npassword = "from-file"\n[kafka]\nsasl_username = "u"\n')
    monkeypatch.setenv("LAKESYNC_SECRETS_DIR", str(secrets))

    settings = load_settings(config)
    assert settings.postgres.password is not None and settings.postgres.password.get_secret_value() == "s3cret"
    assert settings.postgres.host == "db"  # the rest of the section still comes from the TOML file
    assert settings.kafka.sasl_password is not None and settings.kafka.sasl_password.get_secret_value() == "k-pass"

    monkeypatch.setenv("LAKESYNC_POSTGRES__PASSWORD", "from-env")
    assert load_settings(config).postgres.password.get_secret_value() == "from-env"  # type: ignore[union-attr]  # the test set the password


def test_a_misspelt_secret_file_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "LAKESYNC_POSTGRES__PASWORD").write_text("x")
    monkeypatch.setenv("LAKESYNC_SECRETS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"postgres\.pasword"):
        load_settings(None)


def test_an_unreadable_secret_file_is_a_configuration_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root reads any mode, so the unreadable file here is one that is not text.
    (tmp_path / "LAKESYNC_POSTGRES__PASSWORD").write_bytes(b"\xff\xfe\x00")
    monkeypatch.setenv("LAKESYNC_SECRETS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"cannot read secret file .*LAKESYNC_POSTGRES__PASSWORD"):
        load_settings(None)


def test_check_config_output_masks_secret_named_pass_through_keys() -> None:
    """client_properties and spark.conf are free-form: a key that says secret is masked by its name."""
    loaded = load_settings(
        None,
        postgres={"password": "pg-pass-1"},
        kafka={"client_properties": {"sasl.oauthbearer.client.secret": "oauth-sec-2", "client.id": "me"}},
        spark={"conf": {"spark.hadoop.fs.s3a.secret.key": "s3-sec-3", "spark.hadoop.fs.s3a.access.key": "AKIA4"}},
    )
    shown = loaded.redacted_json()
    for secret in ("pg-pass-1", "oauth-sec-2", "s3-sec-3", "AKIA4"):
        assert secret not in shown
    assert '"client.id": "me"' in shown
    assert set(loaded.secret_values()) == {"pg-pass-1", "oauth-sec-2", "s3-sec-3", "AKIA4"}


def test_http_endpoints_bind_loopback_unless_told_otherwise() -> None:
    loaded = load_settings(None)
    assert loaded.consumer.http_host == "127.0.0.1" and loaded.stream.http_host == "127.0.0.1"
    assert load_settings(None, stream={"http_host": "0.0.0.0"}).stream.http_host == "0.0.0.0"


def test_the_s3_secret_is_masked_and_comes_from_a_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 secret key is a SecretStr like the passwords: only the Spark session's settings hold it."""
    (tmp_path / "LAKESYNC_S3__SECRET_ACCESS_KEY").write_text("very-secret\n")
    monkeypatch.setenv("LAKESYNC_SECRETS_DIR", str(tmp_path))
    loaded = load_settings(None, s3={"endpoint": "http://127.0.0.1:8333", "access_key_id": "AKID"})
    assert "very-secret" not in loaded.model_dump_json() + repr(loaded)
    hadoop = loaded.s3.hadoop_conf()
    assert hadoop["fs.s3a.secret.key"] == "very-secret" and hadoop["fs.s3a.access.key"] == "AKID"
    assert hadoop["fs.s3a.connection.ssl.enabled"] == "false"
    assert hadoop["fs.s3a.aws.credentials.provider"].endswith("SimpleAWSCredentialsProvider")


def test_an_s3_key_without_its_secret_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"s3: .*set both access_key_id and secret_access_key"):
        load_settings(None, s3={"access_key_id": "AKID"})


def test_state_dir_keeps_an_object_store_uri_and_takes_a_path() -> None:
    """`Path` would fold `s3a://bucket` into `s3a:/bucket`; a URI must reach Spark as written."""
    assert load_settings(None, state_dir="s3a://bucket/lakesync/state").state_dir == "s3a://bucket/lakesync/state"
    assert load_settings(None, state_dir=Path("/var/lib/state")).state_dir == "/var/lib/state"
