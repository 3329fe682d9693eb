"""Container health check without curl: GET a lakesync endpoint on this host, exit 0 on HTTP 200.

    python -m deploy.healthcheck consumer /healthz
    python -m deploy.healthcheck stream /readyz

The port is the process's own setting from the environment (`LAKESYNC_CONSUMER__HTTP_PORT`,
`LAKESYNC_STREAM__HTTP_PORT`), which the images set; slim images have Python, not curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

PORT_VARIABLES = {"consumer": "LAKESYNC_CONSUMER__HTTP_PORT", "stream": "LAKESYNC_STREAM__HTTP_PORT"}
DEFAULT_PORTS = {"consumer": "9101", "stream": "9102"}


def probe(url: str, timeout_s: float = 4.0) -> int:
    """0 when the endpoint answers 200, else 1 with the reason on stderr."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"{url}: HTTP {exc.code}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in PORT_VARIABLES or not argv[1].startswith("/"):
        print("usage: python -m deploy.healthcheck consumer|stream /path", file=sys.stderr)
        return 2
    process, path = argv
    port = os.environ.get(PORT_VARIABLES[process]) or DEFAULT_PORTS[process]
    return probe(f"http://127.0.0.1:{port}{path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
