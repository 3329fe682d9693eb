"""The one typed configuration of lakesync: a TOML file plus `LAKESYNC_*` environment overrides.

Precedence (highest first): explicit overrides in code, environment variables, secret files
(`$LAKESYNC_SECRETS_DIR/LAKESYNC_POSTGRES__PASSWORD`, named like the variables), the TOML file,
defaults. Nested keys use `__` in the environment: `LAKESYNC_POSTGRES__PORT=5433` sets
`postgres.port`. A bad value fails at start-up with `ConfigError` naming the key; passwords are
`SecretStr` and only revealed when a client is built.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lakesync.errors import ConfigError
from lakesync.logs import KafkaLogBridge
from lakesync.redaction import is_secret_name, mask_mapping

CONFIG_ENV_VAR = "LAKESYNC_CONFIG"
SECRETS_DIR_ENV_VAR = "LAKESYNC_SECRETS_DIR"
DEFAULT_CONFIG_FILE = Path("lakesync.toml")

# Kafka topic names: the broker's own rule (legal characters, at most 249 of them).
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def default_cache_dir() -> Path:
    """Where setup puts the Maven-fetched jars; shared by every checkout on the machine."""
    return Path(os.environ.get("LAKESYNC_CACHE_DIR", Path.home() / ".cache" / "lakesync"))


def _location_text(value: Any) -> Any:
    """A Path (from code) becomes text; `s3a://bucket/dir` must stay a URI, which Path would mangle."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


# A local directory or a Hadoop file system URI (`s3a://bucket/dir`, `hdfs://nn/dir`).
StorageLocation = Annotated[str, BeforeValidator(_location_text)]


class _Section(BaseModel):
    # Frozen so a running service cannot drift from what it validated; unknown keys are typos.
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """Brokers, security and topic defaults; security keys pass through to librdkafka."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    # Any other librdkafka property, e.g. {"client.dns.lookup" = "use_all_dns_ips"}.
    client_properties: dict[str, str] = Field(default_factory=dict)
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    # Topics lakesync creates refuse writes when fewer replicas than this are in sync (default:
    # min(2, topic_replication_factor)), and never elect an out-of-sync leader unless allowed here.
    topic_min_insync_replicas: int | None = Field(default=None, ge=1)
    topic_unclean_leader_election: bool = False
    dead_letter_topic: str = "lakesync.dead-letter"

    @field_validator("dead_letter_topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not _TOPIC_RE.match(value):
            raise ValueError("must be 1-249 characters of [A-Za-z0-9._-]")
        return value

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError("sasl_mechanism is required when security_protocol is SASL_*")
        return self

    def client_config(self) -> dict[str, Any]:
        """librdkafka properties shared by producers, consumers and admin clients (secrets revealed).

        `logger` routes librdkafka's own lines through lakesync's log instead of raw stderr.
        """
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": _reveal(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": _reveal(self.ssl_key_password),
        }
        config.update({key: str(value) for key, value in optional.items() if value is not None})
        config.update(self.client_properties)
        config["logger"] = KafkaLogBridge()
        return config

    def secret_values(self) -> list[str]:
        """Every secret value these settings hold, typed or in client_properties."""
        typed = [_reveal(self.sasl_password), _reveal(self.ssl_key_password)]
        passed = [value for key, value in self.client_properties.items() if is_secret_name(key)]
        return [value for value in [*typed, *passed] if value]


class PostgresSettings(_Section):
    """Target database, its TLS mode and the consumer's connection pool."""

    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str = "lakesync"
    user: str = "lakesync"
    password: SecretStr | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    sslrootcert: Path | None = None
    connect_timeout_s: int = Field(default=10, ge=1)
    application_name: str = "lakesync"
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=4, ge=1)
    pool_max_lifetime_s: float = Field(default=3600.0, gt=0)
    pool_timeout_s: float = Field(default=30.0, gt=0)
    # Upper bound on concurrent JDBC connections Spark opens for partitioned reads and COPY.
    max_spark_connections: int = Field(default=4, ge=1)
    jdbc_fetch_size: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _pool_bounds(self) -> PostgresSettings:
        if self.pool_max_size < self.pool_min_size:
            raise ValueError("pool_max_size must be greater or equal than pool_min_size")
        return self

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect / ConnectionPool(kwargs=...) (secrets revealed)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout_s,
            "application_name": self.application_name,
        }
        if self.password is not None:
            kwargs["password"] = self.password.get_secret_value()
        if self.sslrootcert is not None:
            kwargs["sslrootcert"] = str(self.sslrootcert)
        return kwargs

    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.dbname}"

    def jdbc_properties(self) -> dict[str, str]:
        """Spark JDBC options: driver, credentials, TLS and a non-zero fetch size.

        pgJDBC reads the whole result set into memory unless fetchsize > 0 (and autocommit off,
        which Spark's JDBC reader arranges), so the fetch size is always set.
        """
        props = {
            "driver": "org.postgresql.Driver",
            "user": self.user,
            "sslmode": self.sslmode,
            "fetchsize": str(self.jdbc_fetch_size),
            "ApplicationName": self.application_name,
            "connectTimeout": str(self.connect_timeout_s),
        }
        if self.password is not None:
            props["password"] = self.password.get_secret_value()
        if self.sslrootcert is not None:
            props["sslrootcert"] = str(self.sslrootcert)
        return props


class SparkSettings(_Section):
    """Spark session settings. Unset numbers are derived from the machine (connectors/spark.py)."""

    master: str | None = None
    app_name: str = "lakesync"
    jars_dir: Path = Field(default_factory=lambda: default_cache_dir() / "jars" / "spark")
    shuffle_partitions: int | None = Field(default=None, ge=1)
    default_parallelism: int | None = Field(default=None, ge=1)
    driver_memory: str = "2g"
    ui_enabled: bool = True
    log_level: str = "WARN"
    # Raw spark.* settings; these win over everything lakesync derives.
    conf: dict[str, str] = Field(default_factory=dict)


class S3Settings(_Section):
    """Object storage reached through Hadoop's S3A connector (`s3a://` sources, lookups, state_dir).

    Every value becomes a `spark.hadoop.fs.s3a.*` setting of the Spark session; the secret key is
    revealed only there (Spark redacts it in its UI and logs). Unset credentials leave S3A's own
    provider chain (environment, instance or pod identity) to find them.
    """

    endpoint: str | None = None  # e.g. "http://127.0.0.1:8333"; unset: AWS S3 of the region
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    # S3-compatible servers (SeaweedFS, MinIO, Ceph) serve buckets as paths, not host names.
    path_style_access: bool = False
    # The hadoop-aws jar and the AWS SDK bundle, fetched by setup (deploy/maven/s3a-jars.pom.xml).
    jars_dir: Path = Field(default_factory=lambda: default_cache_dir() / "jars" / "s3a")

    @model_validator(mode="after")
    def _keys_come_in_pairs(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        return self

    def hadoop_conf(self) -> dict[str, str]:
        """The `fs.s3a.*` Hadoop settings (secret revealed): for the Spark session only."""
        conf = {
            "fs.s3a.endpoint.region": self.region,
            "fs.s3a.path.style.access": str(self.path_style_access).lower(),
        }
        if self.endpoint is not None:
            conf["fs.s3a.endpoint"] = self.endpoint
            conf["fs.s3a.connection.ssl.enabled"] = str(self.endpoint.startswith("https://")).lower()
        if self.access_key_id is not None and self.secret_access_key is not None:
            # Only these keys: S3A must not wander to instance metadata when they are configured.
            conf["fs.s3a.aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
            conf["fs.s3a.access.key"] = self.access_key_id
            conf["fs.s3a.secret.key"] = self.secret_access_key.get_secret_value()
        return conf


class ColumnMapping(_Section):
    """One target column: a renamed source column or a SQL expression, optionally cast.

    Expressions are Spark SQL over the source columns and the lookups' columns (`<lookup>.<col>`).
    A cast that fails for a row quarantines that row to the dead-letter topic (never a silent null).
    """

    name: str
    source: str | None = None
    expr: str | None = None
    cast: str | None = None

    @model_validator(mode="after")
    def _source_or_expr(self) -> ColumnMapping:
        if self.source is not None and self.expr is not None:
            raise ValueError(f"column {self.name!r}: set source or expr, not both")
        return self


class LookupTable(_Section):
    """A small reference table joined by broadcast (e.g. state code -> state name)."""

    name: str
    path: str
    format: Literal["csv", "parquet", "delta", "json"] = "csv"
    # source column -> lookup column; a left join, so rows without a match keep nulls.
    on: dict[str, str] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _simple_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must start with a letter or _ and hold only letters, digits and _")
        return value


class ConsumerSettings(_Section):
    """`lakesync consume`: batching, retries, HTTP endpoints and PostgreSQL bookkeeping."""

    group_id: str = "lakesync"
    # A batch closes at whichever bound it reaches first; one batch = one PostgreSQL transaction.
    batch_max_messages: int = Field(default=10_000, ge=1)
    batch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    batch_max_wait_s: float = Field(default=0.5, gt=0)
    # ... or once it holds messages and none came for this long (a commit's burst has arrived).
    batch_idle_s: float = Field(default=0.05, gt=0)
    # Transient PostgreSQL/Kafka errors are retried with backoff until this deadline, then we stop.
    retry_deadline_s: float = Field(default=300.0, gt=0)
    retry_initial_backoff_s: float = Field(default=0.2, gt=0)
    retry_max_backoff_s: float = Field(default=10.0, gt=0)
    # /healthz, /readyz, /metrics, /lag, /lag/history and /dashboard; 0 = no HTTP server.
    # Loopback unless said otherwise: the container configs set 0.0.0.0 for their orchestrators.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535)
    auto_create_tables: bool = True
    add_columns: bool = True
    # Delete versions are kept this long so a late, stale upsert never resurrects a deleted row;
    # keep it above the change topics' delete.retention.ms plus min.compaction.lag.ms.
    tombstone_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    tombstone_cleanup_interval_s: float = Field(default=600.0, gt=0)
    # A member that stops heartbeating (killed) loses its partitions after this long.
    session_timeout_s: float = Field(default=45.0, ge=6, le=300)
    # Static group membership: a restarted member with the same id gets its partitions back at
    # once instead of after session_timeout_s. Unset: the host name (the pod name on Kubernetes);
    # "" turns static membership off. Two running members must never share one.
    group_instance_id: str | None = Field(default=None, max_length=200)
    # Partitions applied at the same time, each batch on its own PostgreSQL connection
    # (postgres.pool_max_size must leave one more connection for claims and probes).
    apply_parallelism: int = Field(default=2, ge=1, le=32)
    # PostgreSQL statement_timeout and lock_timeout of the consumer's connections; a statement
    # that runs into either is retried like any transient error.
    statement_timeout_s: float = Field(default=60.0, gt=0)
    lock_timeout_s: float = Field(default=10.0, gt=0)
    # librdkafka's prefetch queue per consumer, in KiB: bounds memory together with the batch.
    fetch_queue_max_kbytes: int = Field(default=4 * 1024, ge=1024)
    # SIGTERM/SIGINT: how long to let the batch in flight finish before abandoning it (< 10 s).
    shutdown_grace_s: float = Field(default=5.0, ge=0, le=8)

    @model_validator(mode="after")
    def _backoff_bounds(self) -> ConsumerSettings:
        if self.retry_max_backoff_s < self.retry_initial_backoff_s:
            raise ValueError("retry_max_backoff_s must be greater or equal than retry_initial_backoff_s")
        return self


class TableMapping(_Section):
    """One Delta source table kept in step with one PostgreSQL target table."""

    name: str
    source_path: str | None = None
    source_table: str | None = None
    target_schema: str = "public"
    target_table: str
    # Target column names (after mapping) that identify a row.
    key_columns: list[str] = Field(min_length=1)
    topic: str | None = None
    # Empty: every source column passes through unchanged (new source columns too).
    columns: list[ColumnMapping] = Field(default_factory=list)
    lookups: list[LookupTable] = Field(default_factory=list)
    # Delta version to start the change feed at; unset: the first batch is the table's snapshot.
    starting_version: int | None = Field(default=None, ge=0)
    max_files_per_trigger: int | None = Field(default=None, ge=1)
    max_bytes_per_trigger: str | None = None

    @field_validator("name")
    @classmethod
    def _simple_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must start with a letter or _ and hold only letters, digits and _")
        return value

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str | None) -> str | None:
        if value is not None and not _TOPIC_RE.match(value):
            raise ValueError("must be 1-249 characters of [A-Za-z0-9._-]")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TableMapping:
        if (self.source_path is None) == (self.source_table is None):
            raise ValueError("set exactly one of source_path or source_table")
        return self

    @model_validator(mode="after")
    def _keys_are_target_columns(self) -> TableMapping:
        if self.columns:
            names = [c.name for c in self.columns]
            missing = [k for k in self.key_columns if k not in names]
            if missing:
                raise ValueError(f"key_columns {missing} are not among the mapped columns {names}")
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"mapped column names repeat: {repeated}")
        return self

    @property
    def source(self) -> str:
        """The Delta table as written in the config (path or catalog name)."""
        return self.source_path or self.source_table or ""

    @property
    def topic_name(self) -> str:
        return self.topic or f"lakesync.{self.name}"


class StreamSettings(_Section):
    """The streaming job (`lakesync stream`)."""

    # How often a micro-batch starts when changes are waiting.
    trigger_interval_s: float = Field(default=2.0, gt=0)
    # SIGTERM waits this long for the running batch to finish before stopping it.
    shutdown_timeout_s: float = Field(default=60.0, gt=0)
    # HTTP address and port for /healthz, /readyz and /metrics (port 0: disabled).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535)
    # A publishing task rides out a PostgreSQL outage (the stream's state) this long, reconnecting
    # with backoff, before it fails the micro-batch.
    postgres_retry_deadline_s: float = Field(default=300.0, gt=0)
    # Seeding the state from the target (a table's first start) waits this long for the consumer
    # group (consumer.group_id) to apply what is already on the topic, then refuses to start.
    seed_wait_s: float = Field(default=600.0, ge=0)
    # How often the job checks that it still holds its tables' locks (PostgreSQL advisory locks
    # on a connection of their own): a lost lock stops the job within about this long.
    lock_check_interval_s: float = Field(default=5.0, gt=0)


class LagSettings(_Section):
    """Lag evaluation in services (consumer `/lag`, `lakesync lag --serve`); see observability/lag.py."""

    # The status rules look at the samples of this sliding window.
    window_s: float = Field(default=60.0, gt=0)
    # How often services read the group's offsets from Kafka.
    sample_interval_s: float = Field(default=5.0, gt=0)
    # How far back /lag/history (the built-in page's charts) reaches.
    history_s: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> LagSettings:
        if self.window_s < 2 * self.sample_interval_s:
            raise ValueError("window_s must hold at least two samples (>= 2 x sample_interval_s)")
        if self.history_s < self.window_s:
            raise ValueError("history_s must be greater or equal than window_s")
        return self


class LakesyncSettings(BaseSettings):
    """Everything a lakesync process needs; load it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="LAKESYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    lag: LagSettings = Field(default_factory=LagSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    tables: list[TableMapping] = Field(default_factory=list)
    # The streaming job's checkpoints live under this directory: a local path, or a URI of any
    # store Spark reaches (`s3a://bucket/lakesync/state`), seen alike by the driver and executors.
    state_dir: StorageLocation = ".lakesync/state"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @model_validator(mode="after")
    def _unique_table_names(self) -> LakesyncSettings:
        names = [table.name for table in self.tables]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"table names must be unique; repeated: {', '.join(duplicated)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file comes from model_config["toml_file"], set per load by load_settings.
        return (init_settings, env_settings, _SecretFiles(settings_cls), TomlConfigSettingsSource(settings_cls))

    def redacted_json(self) -> str:
        """The settings as JSON for people: typed secrets and secret-named pass-through keys masked."""
        data = self.model_dump(mode="json")
        data["kafka"]["client_properties"] = mask_mapping(data["kafka"]["client_properties"])
        data["spark"]["conf"] = mask_mapping(data["spark"]["conf"])
        return json.dumps(data, indent=2)

    def secret_values(self) -> list[str]:
        """Every secret value in the settings, for scrubbing from logs and error lines."""
        typed = [_reveal(self.postgres.password), _reveal(self.s3.secret_access_key)]
        spark = [value for key, value in self.spark.conf.items() if is_secret_name(key)]
        return [value for value in [*typed, *self.kafka.secret_values(), *spark] if value]

    def table(self, name: str) -> TableMapping:
        """The mapping called `name`, or ConfigError listing the known ones."""
        for table in self.tables:
            if table.name == name:
                return table
        known = ", ".join(t.name for t in self.tables) or "none configured"
        raise ConfigError(f"tables: no table named {name!r} (known: {known})")


class _SecretFiles(PydanticBaseSettingsSource):
    """Values from files in $LAKESYNC_SECRETS_DIR named like the environment variables.

    Compose secrets and Kubernetes Secret volumes deliver passwords as files, so they are neither
    baked into an image nor visible in the process environment: a file
    `LAKESYNC_POSTGRES__PASSWORD` holding the password sets `postgres.password`. Other files in
    the directory (another service's secrets, Kubernetes' `..data` links) are ignored.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False  # unused: __call__ reads the whole directory

    def __call__(self) -> dict[str, Any]:
        directory = os.environ.get(SECRETS_DIR_ENV_VAR)
        if not directory:
            return {}
        values: dict[str, Any] = {}
        for path in sorted(Path(directory).glob("LAKESYNC_*")):
            if not path.is_file():
                continue
            *sections, key = path.name.removeprefix("LAKESYNC_").lower().split("__")
            node = values
            for section in sections:
                node = node.setdefault(section, {})
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                # e.g. a Compose secret mounted with the host's mode, unreadable by this user
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(f"{SECRETS_DIR_ENV_VAR}: cannot read secret file {path}: {reason}") from None
            # `echo secret > file` leaves a newline that is not part of the secret.
            node[key] = text.rstrip("\r\n")
        return values


def resolve_config_path(path: Path | None) -> Path | None:
    """The file to read: the argument, else $LAKESYNC_CONFIG, else ./lakesync.toml if present."""
    if path is not None:
        return path
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(path: Path | None = None, **overrides: Any) -> LakesyncSettings:
    """Read and validate the configuration, or raise ConfigError naming the first bad key."""
    config_path = resolve_config_path(path)
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"config file {config_path} does not exist")

    class _FromFile(LakesyncSettings):
        model_config = SettingsConfigDict(toml_file=config_path)

    try:
        return _FromFile(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, config_path)) from None
    except ValueError as exc:  # a malformed TOML file surfaces as tomllib.TOMLDecodeError
        raise ConfigError(f"config file {config_path}: {exc}") from None


def describe_validation_error(exc: ValidationError, config_path: Path | None) -> str:
    """One line per bad key, e.g. `postgres.port: Input should be a valid integer`.

    Input values are left out on purpose: the bad value may be a password.
    """
    origin = f" (in {config_path} or LAKESYNC_* environment)" if config_path else ""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{key}: {error['msg']}")
    return "invalid configuration" + origin + ": " + "; ".join(lines)


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
