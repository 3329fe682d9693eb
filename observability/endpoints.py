"""HTTP endpoints of lakesync's long-running processes, from a daemon thread (stdlib http.server).

Always:

- `/healthz` 200 while the process's main loop keeps turning (it is not stuck), else 503;
- `/readyz` 200 when every readiness probe answers, else 503; the body is JSON naming each check;
- `/metrics` the Prometheus text format.

Plus the routes a process adds: the consumer service and `lakesync lag --serve` add `/lag`,
`/lag/history` and the built-in page (`dashboard_routes`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# status code, body, content type
Response = tuple[int, bytes, str]
Route = Callable[[], Response]

_PAGE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@dataclass
class Probes:
    """What the endpoints ask; each readiness probe returns True when its dependency answers."""

    alive: Callable[[], bool]
    readiness: dict[str, Callable[[], bool]]
    cache_s: float = 1.0


class HealthServer:
    def __init__(self, host: str, port: int, probes: Probes, routes: Mapping[str, Route] | None = None) -> None:
        self._probes = probes
        self._routes = dict(routes or {})
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, bool]] = (0.0, {})
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="lakesync-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def readiness(self) -> dict[str, bool]:
        """Each readiness check, cached briefly so a busy prober does not load the dependencies."""
        with self._lock:
            checked_at, checks = self._cached
            if time.monotonic() - checked_at > self._probes.cache_s:
                checks = {name: _safely(probe) for name, probe in self._probes.readiness.items()}
                self._cached = (time.monotonic(), checks)
            return checks

    def alive(self) -> bool:
        return _safely(self._probes.alive)

    def route(self, path: str) -> Route | None:
        return self._routes.get(path)


def dashboard_routes() -> dict[str, Route]:
    """The built-in lag page and its assets, read once from the installed package."""
    folder = resources.files("observability") / "dashboard"
    routes: dict[str, Route] = {}
    for name, content_type in (
        ("index.html", _PAGE_TYPES[".html"]),
        ("dashboard.js", _PAGE_TYPES[".js"]),
        ("dashboard.css", _PAGE_TYPES[".css"]),
    ):
        body = (folder / name).read_bytes()
        routes[f"/dashboard/{name}"] = _static(body, content_type)
    # The page links its assets relative to /dashboard, so it is served at that path only.
    routes["/dashboard"] = routes.pop("/dashboard/index.html")
    return routes


def _static(body: bytes, content_type: str) -> Route:
    return lambda: (200, body, content_type)


def _safely(probe: Callable[[], bool]) -> bool:
    try:
        return bool(probe())
    except Exception:  # noqa: BLE001 (a probe that fails for any reason reports "not ready")
        return False


def _handler_for(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                alive = server.alive()
                self._reply(200 if alive else 503, {"status": "alive" if alive else "stuck"})
            elif path == "/readyz":
                checks = server.readiness()
                ready = all(checks.values())
                self._reply(200 if ready else 503, {"status": "ready" if ready else "not ready", "checks": checks})
            elif path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif (route := server.route(path)) is not None:
                self._send(*route())
            else:
                self._reply(404, {"status": "not found"})

        def _reply(self, code: int, body: dict[str, object]) -> None:
            self._send(code, json.dumps(body).encode(), "application/json")

        def _send(self, code: int, payload: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            # The page polls: a cached answer would freeze its charts.
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the batch lines

    return Handler
