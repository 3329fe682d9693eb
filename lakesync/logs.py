"""Structured logging: JSON lines off a terminal, readable console output on one.

Correlation fields (table, batch id, topic/partition/offset range) are bound with
`correlation(...)` and appear on every line logged inside the block, whichever module logs it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

# Keys whose values never reach a log line, whatever their type.
_SECRET_KEYS = frozenset({"password", "sasl.password", "ssl.key.password", "secret", "token"})
_REDACTED = "**********"


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask values logged under a secret-looking key, also one level down in dicts."""
    for key, value in list(event_dict.items()):
        if _is_secret_key(key):
            event_dict[key] = _REDACTED
        elif isinstance(value, Mapping):
            event_dict[key] = {k: _REDACTED if _is_secret_key(k) else v for k, v in value.items()}
    return event_dict


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured.

    Code that swaps stderr for a while (a CLI runner, pytest's capture, a daemon redirect) and
    then closes its stream must not leave every later log line writing to a closed file.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(level: str = "INFO", fmt: LogFormat = "auto") -> None:
    """Route structlog (and stdlib logging, e.g. py4j or kafka callbacks) to stderr."""
    renderer = _renderer(fmt)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(_CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # py4j logs every gateway round trip at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)


@contextmanager
def correlation(**fields: Any) -> Iterator[None]:
    """Bind correlation fields (table=..., batch_id=...) to every log line in the block."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def _renderer(fmt: LogFormat) -> Any:
    use_console = sys.stderr.isatty() if fmt == "auto" else fmt == "console"
    if use_console:
        return structlog.dev.ConsoleRenderer(colors=True)
    return structlog.processors.JSONRenderer(sort_keys=False)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or lowered.endswith("password")
