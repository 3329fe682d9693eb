"""A thread that samples one consumer group's lag from Kafka, judges it and exports it.

Used by the consumer service (behind `/lag`, `/lag/history`, `/dashboard` and `/metrics`) and by
`lakesync lag --serve`. Each round: `OffsetReader.sample` → `LagWindow.add` → evaluate →
gauges. A round that fails (Kafka unreachable) is counted and logged, and the next one tries
again: the last verdict stays readable meanwhile.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from lakesync.config import LagSettings
from lakesync.errors import LakesyncError
from lakesync.logs import get_logger
from observability.endpoints import Route, dashboard_routes
from observability.kafka_offsets import OffsetReader
from observability.lag import GroupLag, LagWindow
from observability.lag_metrics import LagExporter

log = get_logger("lakesync.lag")


class LagMonitor:
    def __init__(
        self,
        reader: OffsetReader,
        group: str,
        tables: Mapping[str, str],
        settings: LagSettings,
        *,
        dead_letter_topic: str | None = None,
    ) -> None:
        """`tables` maps each topic to watch to its table mapping's name."""
        self._reader = reader
        self.group = group
        self.topics: Sequence[str] = sorted(tables)
        self._settings = settings
        self._dead_letter_topic = dead_letter_topic
        self._window = LagWindow(window_s=settings.window_s, history_s=settings.history_s, tables=tables)
        self._exporter = LagExporter(dead_letter_topic)
        self._lock = threading.Lock()
        self._latest: GroupLag | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lakesync-lag", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop sampling; the reader is closed once the thread is out of it (shutdowns stay short)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._reader.close()

    def sample_once(self) -> GroupLag:
        """Take one sample now, judge the window, export the gauges; raises if Kafka fails."""
        sample = self._reader.sample(self.group, self.topics, dead_letter_topic=self._dead_letter_topic)
        with self._lock:
            self._window.add(sample)
            verdict = self._window.evaluate()
            assert verdict is not None
            self._latest = verdict
        self._exporter.export(verdict)
        return verdict

    def latest(self) -> GroupLag | None:
        with self._lock:
            return self._latest

    def lag_json(self) -> tuple[int, bytes, str]:
        """`/lag`: the latest verdict (503 before the first sample)."""
        latest = self.latest()
        if latest is None:
            return 503, json.dumps({"status": "no sample yet", "group": self.group}).encode(), "application/json"
        return 200, json.dumps(latest.to_json()).encode(), "application/json"

    def history_json(self) -> tuple[int, bytes, str]:
        """`/lag/history`: every kept sample as series, for the built-in page."""
        with self._lock:
            body: dict[str, Any] = self._window.history()
        body.update(
            group=self.group,
            window_s=self._settings.window_s,
            history_s=self._settings.history_s,
            sample_interval_s=self._settings.sample_interval_s,
        )
        return 200, json.dumps(body).encode(), "application/json"

    def routes(self) -> dict[str, Route]:
        """`/lag`, `/lag/history` and the built-in page, for `HealthServer(routes=...)`."""
        return {"/lag": self.lag_json, "/lag/history": self.history_json, **dashboard_routes()}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except LakesyncError as exc:
                self._exporter.sample_failed(self.group)
                log.warning("lag sample failed", group=self.group, error=str(exc))
            except Exception as exc:  # noqa: BLE001 (the monitor must never take the service down)
                self._exporter.sample_failed(self.group)
                log.warning("lag sample failed", group=self.group, error_class=type(exc).__name__, error=str(exc))
            self._stop.wait(self._settings.sample_interval_s)
