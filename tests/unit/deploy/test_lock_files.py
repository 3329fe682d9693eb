"""The lock files (deploy/requirements/) hold pyproject.toml's pins, every requirement hashed."""

from __future__ import annotations

import tomllib

import pytest

from tests.support.lock_files import REQUIREMENTS, ROOT, locked, locked_names, pins

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCKS = {
    "runtime.txt": PYPROJECT["dependencies"],
    "consumer.txt": [],
    "dev.txt": PYPROJECT["dependencies"]
    + PYPROJECT["optional-dependencies"]["dev"]
    + PYPROJECT["optional-dependencies"]["bench"],
}
CONSUMER_LEAVES_OUT = {"pyspark", "delta-spark", "deltalake", "pandas"}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_requirement_is_pinned_with_hashes(lock: str) -> None:
    entries = locked(REQUIREMENTS / lock)
    assert entries
    assert [
        name for name, _version, hashes in entries if not hashes or not all(h.startswith("sha256:") for h in hashes)
    ] == []


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_each_pin_of_pyproject_is_in_its_lock_at_the_same_version(lock: str) -> None:
    versions = {(name, version) for name, version, _hashes in locked(REQUIREMENTS / lock)}
    assert set(pins(LOCKS[lock])) - {name for name, _ in versions} == set(), "run `make lock`"
    assert {(n, v) for n, v in pins(LOCKS[lock]).items()} <= versions, "run `make lock`"


@pytest.mark.parametrize("lock", ["consumer.txt", "dev.txt"])
def test_the_other_locks_agree_with_the_runtime_lock(lock: str) -> None:
    """Compiled against runtime.txt as a constraint: a package has one version in all three."""
    runtime = {(name, version) for name, version, _hashes in locked(REQUIREMENTS / "runtime.txt")}
    runtime_names = {name for name, _ in runtime}
    other = {(name, version) for name, version, _hashes in locked(REQUIREMENTS / lock)}
    assert {(n, v) for n, v in other if n in runtime_names} <= runtime


def test_the_consumer_lock_leaves_spark_delta_and_pandas_out() -> None:
    names = locked_names(REQUIREMENTS / "consumer.txt")
    assert not names & CONSUMER_LEAVES_OUT
    assert set(pins(PYPROJECT["dependencies"])) - CONSUMER_LEAVES_OUT <= names


def test_setup_installs_a_lock_with_hashes_then_lakesync_without_dependencies() -> None:
    setup = (ROOT / "deploy" / "setup.sh").read_text()
    assert '--require-hashes --requirement "$lock"' in setup
    assert "--no-deps --no-build-isolation --editable" in setup
    assert 'deploy/requirements/dev.txt"' in setup and 'deploy/requirements/runtime.txt"' in setup
