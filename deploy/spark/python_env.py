"""What Spark executors on a cluster run lakesync's Python with, the way Spark documents it.

- **The dependencies**: the runtime lock file (deploy/requirements/runtime.txt, with hashes) in a
  virtualenv packed by venv-pack (`deploy/setup.sh` builds it once per lock file into
  `$LAKESYNC_CACHE_DIR/pyenv/executor-env-<stamp>.tar.gz`, pyspark's jars left out), shipped with
  `spark.archives=<archive>#environment` and run as `spark.pyspark.python=./environment/bin/python`.
- **lakesync itself**: a wheel of the checkout under a `.zip` name, shipped with
  `spark.submit.pyFiles`, so a code change needs no new archive. The name matters: pyspark puts
  only `.zip`, `.egg` and `.jar` files of `spark.submit.pyFiles` on the executors' `sys.path`
  (`SparkContext.PACKAGE_EXTENSIONS`); a `.whl` is shipped but never imported from, and every
  task fails with `No module named 'streaming'`. A wheel is a zip archive, so zipimport reads it.

    python -m deploy.spark.python_env wheel DIR   # build the wheel as DIR/lakesync-<version>.zip, print its path
    python -m deploy.spark.python_env archive     # print the packed environment's path

The executors never use the driver's virtualenv: the cluster's machines need nothing but Python
3.11 and a Spark 4.2.0 of their own.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from lakesync.config import default_cache_dir
from lakesync.errors import SetupError

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = "environment"  # the directory Spark unpacks the archive into, in each executor's cwd


def lock_stamp(lock: Path = ROOT / "deploy" / "requirements" / "runtime.txt") -> str:
    """The stamp setup.sh names the archive with: the first 16 hex digits of the lock file's SHA-256."""
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]


def executor_env_archive() -> Path:
    """The packed environment for this checkout's pins, or SetupError saying how to build it."""
    archive = default_cache_dir() / "pyenv" / f"executor-env-{lock_stamp()}.tar.gz"
    if not archive.is_file():
        raise SetupError(f"no packed executor environment at {archive}; run `bash deploy/setup.sh`")
    return archive


def build_wheel(out_dir: Path) -> Path:
    """A wheel of lakesync from this checkout (no dependencies: those travel in the archive), under
    the `.zip` name the executors import from."""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out_dir)]
    result = subprocess.run([*command, str(ROOT)], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SetupError(f"building the lakesync wheel failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    wheel = max(out_dir.glob("lakesync-*.whl"), key=lambda p: p.stat().st_mtime)
    return wheel.replace(wheel.with_name(f"lakesync-{wheel.name.split('-')[1]}.zip"))


def submit_options(wheel: Path, archive: Path) -> list[str]:
    """spark-submit options that give the executors lakesync and its dependencies."""
    return [
        "--archives",
        f"{archive}#{ENVIRONMENT}",
        "--py-files",
        str(wheel),
        "--conf",
        f"spark.pyspark.python=./{ENVIRONMENT}/bin/python",
    ]


def main(argv: list[str]) -> int:
    if argv[:1] == ["wheel"] and len(argv) == 2:
        print(build_wheel(Path(argv[1])))
    elif argv == ["archive"]:
        print(executor_env_archive())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
