"""The Grafana dashboard, its provisioning, the Prometheus config and alert rules are valid and
name only metrics lakesync really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

# Importing the modules registers every metric lakesync defines.
import streaming.consumer.metrics
import streaming.publisher.metrics  # noqa: F401

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "lakesync-lag.json"
PROMETHEUS = DEPLOY / "prometheus"
_METRIC = re.compile(r"\b(lakesync_[a-z0-9_]+)\b")
# Series Prometheus itself provides.
_BUILTIN = {"up"}


def exported_names() -> set[str]:
    """Every series name lakesync's registry can expose (counter _total, histogram parts)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("lakesync_"):
            continue
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel["targets"]]


def rules() -> list[dict[str, object]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_dashboard_query_names_an_exported_metric() -> None:
    known = exported_names()
    exprs = dashboard_exprs()
    assert len(exprs) >= 18
    for title, expr in exprs:
        named = set(_METRIC.findall(expr))
        assert named, f"panel {title!r} queries no lakesync metric: {expr}"
        assert named <= known, f"panel {title!r} names metrics nobody exports: {sorted(named - known)}"


def test_dashboard_covers_what_operators_need() -> None:
    """Time lag, offset lag, per-partition top lists, apply rate, latency, version lag, DLQ, retries."""
    text = " ".join(expr for _, expr in dashboard_exprs())
    for metric in (
        "lakesync_consumer_group_lag_seconds",
        "lakesync_consumer_group_lag)",
        "topk(",
        "lakesync_consumer_rows_applied_total",
        "lakesync_end_to_end_latency_seconds_bucket",
        "lakesync_stream_delta_version_lag",
        "lakesync_dead_letter_topic_records",
        "lakesync_consumer_retries_total",
    ):
        assert metric in text


def test_dashboard_layout_and_datasource_match_the_provisioning() -> None:
    board = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    uid = datasources["datasources"][0]["uid"]
    assert board["uid"] and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == uid
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/lakesync.yaml").read_text())
    assert providers["apiVersion"] == 1 and providers["providers"][0]["type"] == "file"


def test_alert_rules_have_the_required_shape_and_known_metrics() -> None:
    known = exported_names() | _BUILTIN
    found = rules()
    names = {rule["alert"] for rule in found}
    assert {
        "LakesyncLagHigh",
        "LakesyncLagGrowing",
        "LakesyncConsumerStopped",
        "LakesyncDeadLettersPresent",
        "LakesyncEndToEndLatencyHigh",
    } <= names
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}  # type: ignore[index]  # YAML of the repository's own rule files
        assert "summary" in rule["annotations"]  # type: ignore[operator]  # YAML of the repository's own rule files
        named = set(_METRIC.findall(str(rule["expr"]))) | ({"up"} if "up{" in str(rule["expr"]) else set())
        assert named and named <= known, rule["alert"]
    by_name = {rule["alert"]: rule for rule in found}
    assert by_name["LakesyncLagHigh"]["for"] == "5m"
    assert by_name["LakesyncLagGrowing"]["for"] == "15m"


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run deploy/setup.sh (it installs Debian's prometheus package)"
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "alerts.test.yml"],  # the alerts fire (and stay quiet) on synthetic series
    ],
)
def test_promtool_accepts_the_prometheus_files(promtool: str, args: list[str]) -> None:
    result = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
