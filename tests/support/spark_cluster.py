"""A real Spark standalone cluster for the tests: a master and two workers, each its own JVM.

They run from the pinned pyspark (`spark-class org.apache.spark.deploy.master.Master` and
`...worker.Worker`), on loopback ports, one core and 1 GiB each, so a job on `spark://` runs its
tasks in two executor JVMs apart from the driver, as on a real cluster. Each worker runs in a
session of its own: `kill_worker` SIGKILLs a worker with its executor and Python workers, as when
a machine dies.

Jobs are submitted with spark-submit the way deploy/README.md documents: Delta and the PostgreSQL
driver with `--jars`, the S3A jars on the class path, the executors' Python packed by setup and
shipped with `--archives`, lakesync itself as a wheel with `--py-files`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from deploy.processes import free_port, tail, tcp_open, terminate, wait_until_ready
from deploy.spark.python_env import ROOT, submit_options

SPARK_HOME = Path(pyspark.__file__).parent
SPARK_BIN = Path(sys.executable).parent
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
WORKER_CORES = 1
WORKER_MEMORY = "1g"
EXECUTOR_MEMORY = "768m"


@dataclass
class SparkCluster:
    home: Path
    port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._launch("master", MASTER_CLASS, "--host", "127.0.0.1", "--port", str(self.port), *_ui_port())
        wait_until_ready(
            "Spark master",
            lambda: tcp_open(self.port),
            alive=self._alive("master"),
            log=self._log("master"),
            timeout_s=60,
        )
        for name in ("worker-1", "worker-2"):
            self.start_worker(name)

    def start_worker(self, name: str) -> None:
        work = self.home / name
        work.mkdir(exist_ok=True)
        args = ["--host", "127.0.0.1", "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY, "--work-dir", str(work)]
        self._launch(name, WORKER_CLASS, self.master_url, *args, *_ui_port())
        wait_until_ready(
            f"Spark {name}",
            lambda: "Successfully registered with master" in self._log(name).read_text(errors="replace"),
            alive=self._alive(name),
            log=self._log(name),
            timeout_s=60,
        )

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker's whole process group: the worker, its executor and Python workers."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for name in [n for n in self.processes if n != "master"] + ["master"]:
            process = self.processes.pop(name, None)
            if process is not None and process.poll() is None:
                terminate(process.pid, timeout_s=15)

    def submit(self, args: list[str], *, wheel: Path, archive: Path, jars: list[Path], s3a_jars: Path) -> list[str]:
        """The spark-submit command line of one lakesync job on this cluster (`args`: lakesync's)."""
        classpath = f"{s3a_jars}/*"
        return [
            str(SPARK_BIN / "spark-submit"),
            "--master",
            self.master_url,
            "--jars",
            ",".join(str(j) for j in jars),
            "--driver-class-path",
            classpath,
            "--conf",
            f"spark.executor.extraClassPath={classpath}",
            *submit_options(wheel, archive),
            "--conf",
            f"spark.pyspark.driver.python={sys.executable}",
            *CLUSTER_CONF,
            str(ROOT / "deploy" / "spark" / "driver.py"),
            *args,
        ]

    def log_tail(self, name: str) -> str:
        return tail(self._log(name), 40)

    def _launch(self, name: str, main_class: str, *args: str) -> None:
        env = {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": "256m",
            "SPARK_LOG_DIR": str(self.home),
            "SPARK_WORKER_DIR": str(self.home / name),
        }
        with self._log(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [str(SPARK_BIN / "spark-class"), main_class, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def _alive(self, name: str):  # type: ignore[no-untyped-def]
        return lambda: name in self.processes and self.processes[name].poll() is None

    def _log(self, name: str) -> Path:
        return self.home / f"{name}.log"


# The Spark settings of every test job on the cluster (deploy/README.md shows the same).
CLUSTER_CONF = [
    "--conf",
    f"spark.executor.memory={EXECUTOR_MEMORY}",
    "--conf",
    "spark.executor.cores=1",
    "--conf",
    "spark.cores.max=2",
    "--conf",
    "spark.ui.enabled=false",
    # Everything stays on loopback: the driver listens and advertises itself there.
    "--conf",
    "spark.driver.host=127.0.0.1",
    "--conf",
    "spark.driver.bindAddress=127.0.0.1",
    "--driver-memory",
    "1g",
]


def _ui_port() -> list[str]:
    return ["--webui-port", str(free_port())]
