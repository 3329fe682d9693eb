"""Observability tests' helpers: settings with quick lag sampling, the CLI, HTTP and metrics,
and a headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lakesync.config import LakesyncSettings

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Chromium on a closed network: no sandbox as root, and none of its background traffic.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1700",
)


def settings_for(
    settings: LakesyncSettings, name: str, *, state_dir: Path | None = None, **sections: Any
) -> LakesyncSettings:
    """The session settings with one table `name` (topic lakesync.<name>), its own group and quick lag sampling."""
    data = settings.model_dump()
    data["postgres"]["password"] = settings.postgres.password.get_secret_value() if settings.postgres.password else None
    data["tables"] = [{"name": name, "source_path": f"/lake/{name}", "target_table": name, "key_columns": ["id"]}]
    data["consumer"] = {"group_id": f"g-{name}", "batch_max_wait_s": 0.2, "session_timeout_s": 6.0}
    data["lag"] = {"window_s": 3.0, "sample_interval_s": 1.0, "history_s": 300.0}
    if state_dir is not None:
        data["state_dir"] = state_dir
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return LakesyncSettings(**data)


def cli(config: Path, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`lakesync --config CONFIG ARGS...` in a subprocess with a clean LAKESYNC_* environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "lakesync", "--log-format", "json", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
    )


def lag_json(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """`lakesync lag --json ARGS`: its exit code and the verdict."""
    result = cli(config, "lag", "--json", *args)
    assert result.stdout.strip(), f"no verdict (exit {result.returncode}): {result.stderr[-2000:]}"
    return result.returncode, json.loads(result.stdout)


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(port: int) -> dict[str, float]:
    """`/metrics` as {'name{labels}': value}, plus bare names mapped to their first value."""
    status, body = http_get(port, "/metrics")
    assert status == 200
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        samples[series] = float(value)
        samples.setdefault(series.split("{", 1)[0], float(value))
    return samples


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, driven through its chromedriver (never a downloaded one)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver_path, "chromium and chromedriver are missing: run deploy/setup.sh"
    profile = tempfile.mkdtemp(prefix="lakesync-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
