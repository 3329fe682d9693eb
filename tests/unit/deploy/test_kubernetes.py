"""deploy/k8s: every object validates against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields fail), the KEDA ScaledObject against an abridged transcription of its CRD
schema, and the objects agree with each other and with the lakesync configuration they carry."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from lakesync.config import LakesyncSettings, load_settings
from tests.support.deploy_files import DEPLOY, dockerfile_stages, k8s_documents, k8s_object

K8S = DEPLOY / "k8s"
SCHEMAS = Path(__file__).parent / "schemas"
# podFailurePolicy and PodDisruptionBudget.unhealthyPodEvictionPolicy are GA from 1.31 on.
VERSIONS = ("1.31.0", "1.37.0")
CRDS = {("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda.sh_scaledobject_v1alpha1.json"}
# KEDA's Apache Kafka scaler parameters (keda.sh/docs/2.x/scalers/apache-kafka).
KAFKA_SCALER_KEYS = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "partitionLimitation",
    "version",
    "sasl",
    "tls",
    "unsafeSsl",
}


def core_documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p, d in k8s_documents() if (d["apiVersion"], d["kind"]) not in CRDS]


def configured() -> LakesyncSettings:
    """The lakesync.toml the ConfigMap carries, loaded (and so validated) by lakesync itself."""
    toml = k8s_object("ConfigMap", "lakesync-config")["data"]["lakesync.toml"]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "lakesync.toml"
        path.write_text(toml)
        return load_settings(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_kubernetes_object_validates_strictly(version: str) -> None:
    documents = core_documents()
    assert len(documents) >= 12  # two PVCs left when the state moved to object storage
    for path, document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} {document['kind']}/{document['metadata']['name']}: {exc}")


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = json.loads(json.dumps(k8s_object("Deployment", "lakesync-consumer")))
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_executor_pod_template_is_a_valid_pod() -> None:
    data = k8s_object("ConfigMap", "lakesync-spark-conf")["data"]
    template = yaml.safe_load(data["executor-pod-template.yaml"])
    kubernetes_validate.validate(template, VERSIONS[-1], strict=True)
    command = template["spec"]["containers"][0]["command"]
    spark = dockerfile_stages(DEPLOY / "docker/spark.Dockerfile")[-1]
    assert f"deploy/spark/executor-entrypoint.sh {command[0]}" in spark.all("COPY")


def test_scaled_object_matches_its_crd_schema_and_the_kafka_scaler() -> None:
    scaled = k8s_object("ScaledObject", "lakesync-consumer")
    schema = json.loads(CRDS[("keda.sh/v1alpha1", "ScaledObject")].read_text())
    jsonschema.Draft7Validator(schema).validate(scaled)
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["maxReplicas"] = broken["spec"].pop("maxReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert set(trigger["metadata"]) <= KAFKA_SCALER_KEYS, set(trigger["metadata"]) - KAFKA_SCALER_KEYS


def test_scaling_is_bounded_by_the_partitions_and_reads_the_configured_group() -> None:
    settings = configured()
    scaled = k8s_object("ScaledObject", "lakesync-consumer")
    metadata = scaled["spec"]["triggers"][0]["metadata"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == k8s_object("Deployment", "lakesync-consumer")["metadata"]["name"]
    assert scaled["spec"]["maxReplicaCount"] == settings.kafka.topic_partitions
    assert metadata["allowIdleConsumers"] == "false"
    assert metadata["consumerGroup"] == settings.consumer.group_id
    assert metadata["bootstrapServers"] == settings.kafka.bootstrap_servers


def test_consumer_probes_grace_and_disruption_budget() -> None:
    settings = configured()
    deployment = k8s_object("Deployment", "lakesync-consumer")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.consumer.http_port
    assert settings.consumer.http_host == "0.0.0.0"  # probes and scrapes reach the pod's IP
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The service exits within 10 s of SIGTERM; Kubernetes must not SIGKILL it before.
    assert pod["terminationGracePeriodSeconds"] > 10 > settings.consumer.shutdown_grace_s
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = k8s_object("PodDisruptionBudget", "lakesync-consumer")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = k8s_object("Service", "lakesync-consumer-metrics")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == settings.consumer.http_port


def test_configmap_config_is_valid_lakesync_configuration() -> None:
    settings = configured()
    assert settings.tables and settings.postgres.password is None  # the password comes from the Secret
    secret = k8s_object("Secret", "lakesync-secrets")
    keys = {"LAKESYNC_POSTGRES__PASSWORD", "LAKESYNC_S3__ACCESS_KEY_ID", "LAKESYNC_S3__SECRET_ACCESS_KEY"}
    assert set(secret["stringData"]) == keys
    assert set(secret["stringData"].values()) == {"CHANGE-ME"}  # placeholders, never real
    assert settings.s3.secret_access_key is None  # the S3 keys come from the Secret too
    assert all(t.source.startswith("s3a://") for t in settings.tables)


def _pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    template = document["spec"]["jobTemplate"]["spec"] if document["kind"] == "CronJob" else document["spec"]
    spec: dict[str, Any] = template["template"]["spec"]
    return spec


def test_spark_pods_run_the_spark_image_with_its_conf_secrets_and_state() -> None:
    spark_defaults = k8s_object("ConfigMap", "lakesync-spark-conf")["data"]["spark-defaults.conf"]
    conf = dict(
        line.split(None, 1) for line in spark_defaults.splitlines() if line.strip() and not line.startswith("#")
    )
    spark = dockerfile_stages(DEPLOY / "docker/spark.Dockerfile")[-1].env()
    assert conf["spark.master"].startswith("k8s://https://")
    assert conf["spark.kubernetes.executor.podTemplateFile"].startswith(spark["SPARK_CONF_DIR"] + "/")
    # Object storage for tables and checkpoints: no volume for the executors, no PVC anywhere.
    assert not [key for key in conf if ".volumes." in key]
    assert not [d for _, d in k8s_documents() if d["kind"] == "PersistentVolumeClaim"]
    state_dir = k8s_object("ConfigMap", "lakesync-config")["data"]["state_dir"]
    assert state_dir.startswith("s3a://") and load_settings(None, state_dir=state_dir).state_dir == state_dir
    account = k8s_object("ServiceAccount", "lakesync-spark")["metadata"]["name"]
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == account
    for kind, name in (("Deployment", "lakesync-stream"), ("CronJob", "lakesync-reconcile-people")):
        pod = _pod_spec(k8s_object(kind, name))
        (container,) = pod["containers"]
        assert pod["serviceAccountName"] == account and container["image"] == "lakesync-spark"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts[spark["SPARK_CONF_DIR"]] == "spark-conf" and spark["LAKESYNC_STATE_DIR"] not in mounts
        env = {e["name"]: e for e in container["env"]}
        assert {"POD_NAME", "POD_IP", "LAKESYNC_SECRETS_DIR"} <= set(env)  # ${env:POD_IP} in spark-defaults
        # The environment wins over the image's local state directory, with the ConfigMap's s3a:// URI.
        ref = env["LAKESYNC_STATE_DIR"]["valueFrom"]["configMapKeyRef"]
        assert (ref["name"], ref["key"]) == ("lakesync-config", "state_dir")
    role = k8s_object("Role", "lakesync-spark-driver")
    assert {"create", "delete", "watch"} <= set(role["rules"][0]["verbs"]) and "pods" in role["rules"][0]["resources"]


def test_the_stream_is_one_long_running_driver() -> None:
    stream = k8s_object("Deployment", "lakesync-stream")
    assert stream["spec"]["replicas"] == 1 and stream["spec"]["strategy"]["type"] == "Recreate"
    assert _pod_spec(stream)["containers"][0]["args"] == ["stream"]


def test_reconcile_cronjob_fails_the_job_on_drift_without_retrying() -> None:
    cronjob = k8s_object("CronJob", "lakesync-reconcile-people")
    job = cronjob["spec"]["jobTemplate"]["spec"]
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and 4 in rule["onExitCodes"]["values"]
    # What a retry cannot fix fails at once (bad config, refused, mapping mismatch); unreachable retries.
    assert {2, 11, 12} <= set(rule["onExitCodes"]["values"]) and 10 not in rule["onExitCodes"]["values"]
    assert _pod_spec(cronjob)["restartPolicy"] == "Never"  # required by podFailurePolicy
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    args = _pod_spec(cronjob)["containers"][0]["args"]
    assert args[:2] == ["reconcile", "--table"] and args[2] in {t.name for t in configured().tables}


def test_kustomization_lists_every_manifest_and_names_both_images() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}
    # The placeholder Secret is never applied: an apply must not overwrite the real password.
    assert set(kustomization["resources"]) == files
    images = {image["name"] for image in kustomization["images"]}
    used = set()
    for _, document in k8s_documents():
        if document["kind"] in {"Deployment", "CronJob"}:
            used |= {c["image"] for c in _pod_spec(document)["containers"]}
    assert used == images == {"lakesync-consumer", "lakesync-spark"}
