"""`lakesync up` / `lakesync down` from the command line, and the start-up config check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.processes import pid_alive, tcp_open
from tests.support.config_file import write_toml

pytestmark = pytest.mark.integration

LAKESYNC = [sys.executable, "-m", "lakesync"]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAKESYNC, *args], capture_output=True, text=True, timeout=180, env=env, cwd=cwd)


def test_up_then_down_leaves_no_process_behind(scratch_root: Path) -> None:
    """Every server answers after `up --with-s3`; after `down` their processes are gone and ports closed."""
    home = scratch_root / "cli-stack"
    started = run_cli("up", "--home", str(home), "--with-s3")
    assert started.returncode == 0, started.stderr
    state = json.loads((home / "services.json").read_text())
    pids = [state["kafka"]["pid"], state["postgres"]["pid"], state["s3"]["pid"]]
    ports = [state["kafka"]["port"], state["postgres"]["port"], state["s3"]["port"]]
    assert all(pid_alive(pid) for pid in pids)
    assert all(tcp_open(port) for port in ports)
    assert f"LAKESYNC_CONFIG={home / 'lakesync.toml'}" in started.stdout
    secret = state["s3"]["secret_access_key"]
    assert secret not in started.stdout + started.stderr  # in the 0600 config file only, never printed
    checked = run_cli("--config", str(home / "lakesync.toml"), "check-config")
    assert checked.returncode == 0 and f"http://127.0.0.1:{state['s3']['port']}" in checked.stdout
    assert secret not in checked.stdout + checked.stderr

    stopped = run_cli("down", "--home", str(home))
    assert stopped.returncode == 0, stopped.stderr
    assert not any(pid_alive(pid) for pid in pids)
    assert not any(tcp_open(port) for port in ports)
    postgres_children = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
    assert postgres_children == []


def test_bad_config_value_fails_with_one_line_naming_the_key(tmp_path: Path) -> None:
    """A bad environment value and a typo in the file both exit 2 naming the key."""
    env = {**os.environ, "LAKESYNC_POSTGRES__PORT": "not-a-port"}
    env.pop("LAKESYNC_CONFIG", None)
    bad_env = run_cli("check-config", env=env, cwd=tmp_path)
    assert bad_env.returncode == 2
    assert bad_env.stderr.count("\n") == 1, bad_env.stderr
    assert "postgres.port" in bad_env.stderr

    config = write_toml(
        tmp_path / "lakesync.toml", {"kafka": {"bootstrap_server": "x:9092"}, "postgres": {"password": "hunter2"}}
    )
    typo = run_cli("--config", str(config), "check-config", cwd=tmp_path)
    assert typo.returncode == 2
    assert "kafka.bootstrap_server" in typo.stderr and "Extra inputs are not permitted" in typo.stderr
    assert "hunter2" not in typo.stderr + typo.stdout
