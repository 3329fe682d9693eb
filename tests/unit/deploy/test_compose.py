"""deploy/compose.yaml is a valid Compose file (compose-spec JSON schema) that wires the stack
as documented: pinned images, health-gated start order, secrets as files, matching scrape targets."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lakesync.config import load_settings
from tests.support.deploy_files import DEPLOY, compose_model, dockerfile_stages, interpolate, read_env_file

ENV_EXAMPLE = DEPLOY / ".env.example"
# An exact release tag (major.minor.patch, maybe a variant suffix): never `latest` or a moving
# `3.11`. Digests are not required: this machine cannot reach a registry to look them up.
# PostgreSQL numbers its releases major.minor (17.6), so its tag has two parts.
_PINNED = re.compile(r"^(?:[\w./-]+:v?\d+\.\d+\.\d+|postgres:\d+\.\d+)(?:-[\w.-]+)?$")


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: dict[str, Any] = json.loads(vendored.read_text())
    return schema


def compose_validator() -> jsonschema.protocols.Validator:
    """The validator the schema declares for itself (draft 2020-12: unevaluatedProperties)."""
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert validator.__class__.__name__ == "Draft202012Validator"
    return validator


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return compose_model(read_env_file(ENV_EXAMPLE))


def test_the_file_validates_against_the_compose_spec(model: dict[str, Any]) -> None:
    compose_validator().validate(model)


def test_the_validator_rejects_a_misspelt_service_key(model: dict[str, Any]) -> None:
    """The schema check is live: a typo such as `depend_on` fails it."""
    broken = json.loads(json.dumps(model))
    broken["services"]["consumer"]["depend_on"] = broken["services"]["consumer"].pop("depends_on")
    with pytest.raises(jsonschema.ValidationError, match="depend_on"):
        compose_validator().validate(broken)


def test_env_example_defines_every_required_variable_and_no_password() -> None:
    env = read_env_file(ENV_EXAMPLE)
    text = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required and required <= set(env), sorted(required - set(env))
    with pytest.raises(KeyError, match="KAFKA_CLUSTER_ID"):
        interpolate(text, {k: v for k, v in env.items() if k != "KAFKA_CLUSTER_ID"})
    assert not [k for k in env if "PASSWORD" in k and not k.endswith("_FILE")], "passwords belong in secret files"


def test_the_stack_has_every_service_and_two_consumer_replicas(model: dict[str, Any]) -> None:
    services = model["services"]
    assert {"kafka", "postgres", "stream", "consumer", "prometheus", "grafana"} <= set(services)
    assert services["consumer"]["deploy"]["replicas"] == 2
    assert services["stream"]["build"]["dockerfile"] == "deploy/docker/spark.Dockerfile"
    assert services["consumer"]["build"]["dockerfile"] == "deploy/docker/consumer.Dockerfile"
    assert services["stream"]["command"] == ["stream"]


def test_kafka_is_the_release_the_embedded_broker_runs_in_kraft_mode(model: dict[str, Any]) -> None:
    pom = (DEPLOY / "maven/kafka-broker.pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)  # type: ignore[union-attr]  # the file or secret is the test's own and holds it
    kafka = model["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{version}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "zookeeper" not in json.dumps(kafka).lower()


def test_third_party_images_are_pinned_by_exact_version(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        if "build" in service or name == "lag-exporter":  # our images, tagged by version
            assert re.match(r"^lakesync-(spark|consumer):\d+\.\d+\.\d+$", service["image"]), name
        else:
            assert _PINNED.match(service["image"]), f"{name}: {service['image']}"


def test_start_order_waits_for_healthy_kafka_and_postgres(model: dict[str, Any]) -> None:
    services = model["services"]
    for name in ("kafka", "postgres", "prometheus", "grafana", "lag-exporter"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("stream", "consumer"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == depends["postgres"]["condition"] == "service_healthy", name
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    # The lakesync services' own health checks are the images' HEALTHCHECKs.
    for dockerfile in ("consumer", "spark"):
        assert dockerfile_stages(DEPLOY / f"docker/{dockerfile}.Dockerfile")[-1].last("HEALTHCHECK")


def test_consumer_stops_within_its_grace(model: dict[str, Any]) -> None:
    """Compose sends SIGKILL after stop_grace_period: it must exceed the consumer's 10 s shutdown."""
    grace = model["services"]["consumer"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > 10


def test_secrets_come_from_files_never_from_the_environment(model: dict[str, Any]) -> None:
    services = model["services"]
    assert set(model["secrets"]) == {"postgres_password", "grafana_admin_password"}
    assert all("file" in secret for secret in model["secrets"].values())
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert (
        services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    )
    for name in ("stream", "consumer", "lag-exporter"):
        service = services[name]
        assert service["environment"]["LAKESYNC_SECRETS_DIR"] == "/run/secrets"
        assert {"source": "postgres_password", "target": "LAKESYNC_POSTGRES__PASSWORD"} in service["secrets"]
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            assert not (key.endswith("PASSWORD") and value), f"{name}: {key} set in the environment"


def test_the_mounted_lakesync_config_is_valid_with_the_services_environment(
    model: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the consumer container loads: the TOML file, its LAKESYNC_* variables, the secret file."""
    config = DEPLOY / model["configs"]["lakesync_toml"]["file"]
    (tmp_path / "LAKESYNC_POSTGRES__PASSWORD").write_text("from-a-secret\n")
    for key, value in model["services"]["consumer"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("LAKESYNC_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("LAKESYNC_CONFIG")
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == "kafka:9092" and settings.postgres.host == "postgres"
    assert settings.postgres.password.get_secret_value() == "from-a-secret"  # type: ignore[union-attr]  # the file or secret is the test's own and holds it
    assert settings.consumer.http_port == 9101 and settings.consumer.http_host == "0.0.0.0"
    assert settings.kafka.topic_partitions >= model["services"]["consumer"]["deploy"]["replicas"]


def test_services_with_endpoints_bind_every_interface_of_their_container(model: dict[str, Any]) -> None:
    """lakesync binds 127.0.0.1 unless told; in compose, Prometheus and health checks come from outside."""
    services = model["services"]
    assert services["stream"]["environment"]["LAKESYNC_STREAM__HTTP_HOST"] == "0.0.0.0"
    assert services["consumer"]["environment"]["LAKESYNC_CONSUMER__HTTP_HOST"] == "0.0.0.0"
    assert services["lag-exporter"]["environment"]["LAKESYNC_CONSUMER__HTTP_HOST"] == "0.0.0.0"


def test_prometheus_scrapes_the_compose_services_on_their_ports(model: dict[str, Any]) -> None:
    services = model["services"]
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    ports = {
        "consumer": services["consumer"]["environment"]["LAKESYNC_CONSUMER__HTTP_PORT"],
        "stream": services["stream"]["environment"]["LAKESYNC_STREAM__HTTP_PORT"],
        "lag-exporter": services["lag-exporter"]["entrypoint"][-1],
    }
    seen = {}
    for job in scrape["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                seen[host] = port
        for dns in job.get("dns_sd_configs", []):
            for host in dns["names"]:
                seen[host] = str(dns["port"])
    assert seen == {name: str(port) for name, port in ports.items()}
    mounts = services["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts  # rule_files: alerts.yml


def test_grafana_gets_the_provisioning_and_the_dashboard_where_it_looks(model: dict[str, Any]) -> None:
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/lakesync.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounts = model["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_lakesync_config_parses_as_toml() -> None:
    tomllib.loads((DEPLOY / "compose/lakesync.toml").read_text())
