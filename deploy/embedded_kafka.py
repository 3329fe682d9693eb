"""A real single-node Apache Kafka broker in KRaft mode, for `lakesync up`, the demo and the tests.

The broker runs from the jars setup fetched with Maven (deploy/maven/kafka-broker.pom.xml) into
their own directory; they never share a classpath with Spark's.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from deploy.errors import EmbeddedServiceError
from deploy.processes import DaemonServer, free_port, tcp_open, wait_until_ready
from lakesync.config import default_cache_dir
from lakesync.errors import SetupError

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def kafka_jars_dir() -> Path:
    return Path(os.environ.get("LAKESYNC_KAFKA_JARS_DIR", default_cache_dir() / "jars" / "kafka"))


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home, "bin", "java") if java_home else None
    found = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    if not found:
        raise SetupError("java is not installed; run `bash deploy/setup.sh`")
    return found


@dataclass
class KafkaBroker(DaemonServer):
    """One broker+controller process; `home` holds its config, data and logs."""

    marker: ClassVar[str] = MAIN_CLASS

    home: Path
    port: int = 0
    controller_port: int = 0
    pid: int | None = None
    heap: str = "512m"
    _process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Everything the broker prints (log4j writes to stdout, which lands here)."""
        return self.home / "server.log"

    @property
    def _config_file(self) -> Path:
        return self.home / "server.properties"

    def start(self, timeout_s: float = 90.0) -> None:
        """Format storage on first use, start the broker and wait until metadata answers."""
        if self.running():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.port)
        self.controller_port = free_port(self.controller_port if self.controller_port != self.port else None)
        self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            self._format_storage()
        self._launch()
        wait_until_ready(
            f"Kafka broker on port {self.port}",
            self._metadata_answers,
            alive=self.running,
            log=self.log_file,
            timeout_s=timeout_s,
        )

    def _classpath(self) -> str:
        jars_dir = kafka_jars_dir()
        if not any(jars_dir.glob("kafka_2.13-*.jar")):
            raise SetupError(f"no Kafka broker jars in {jars_dir}; run `bash deploy/setup.sh`")
        return str(jars_dir / "*")

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        return [
            java_executable(),
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        command = self._java_command(
            # `=` form: a base64url id may start with "-", which argparse would take for an option.
            STORAGE_TOOL,
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(self._config_file),
            "--ignore-formatted",
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise EmbeddedServiceError(
                f"formatting Kafka storage failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def _launch(self) -> None:
        self._spawn(self._java_command(MAIN_CLASS, str(self._config_file)), self.log_file)

    def _metadata_answers(self) -> bool:
        if not tcp_open(self.port):
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            metadata = admin.list_topics(timeout=3)
        except Exception:  # noqa: BLE001 (KafkaException while the broker is still electing itself)
            return False
        return len(metadata.brokers) >= 1

    def _write_config(self) -> None:
        data = self.home / "data"
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            # A single node: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests and the demo join groups constantly; the default 3 s delay only slows them.
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.backoff.ms": "1000",
            "auto.create.topics.enable": "false",
        }
        self._config_file.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.home / "log4j2.properties").write_text(_LOG4J2)


_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
"""
