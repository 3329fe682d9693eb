"""Structured logging: JSON lines off a terminal, readable console output on one.

Correlation fields (table, batch id, topic/partition/offset range) are bound with
`correlation(...)` and appear on every line logged inside the block, whichever module logs it.
No secret reaches a line: values under secret-named keys are masked, and the values of the
loaded configuration's secrets are scrubbed from every string (`register_secrets`).
librdkafka's own log lines come through `KafkaLogBridge` (rate-limited, levels by meaning).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO, cast

import structlog

from lakesync.redaction import MASK, is_secret_name, mask_mapping, scrub

LogFormat = Literal["auto", "json", "console"]

# Values of the loaded configuration's secrets: scrubbed from any text that reaches a line.
_known_secrets: set[str] = set()


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask values logged under a secret-named key, at any depth of nested dicts."""
    for key, value in list(event_dict.items()):
        if is_secret_name(key):
            event_dict[key] = MASK
        elif isinstance(value, Mapping):
            event_dict[key] = mask_mapping(value)
    return event_dict


def scrub_secret_values(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace known secret values inside any string of the line (messages, exceptions)."""
    if _known_secrets:
        for key, value in list(event_dict.items()):
            if isinstance(value, str):
                event_dict[key] = scrub(value, _known_secrets)
    return event_dict


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values (passwords, keys) so no log line or error prints them."""
    _known_secrets.update(v for v in values if v)


def known_secrets() -> frozenset[str]:
    return frozenset(_known_secrets)


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


def _current_stderr() -> TextIO:
    # Typed as the text stream it stands for: logging and structlog only write, flush and ask isatty.
    return cast(TextIO, _CurrentStderr())


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
        processors=[*shared, structlog.processors.format_exc_info, scrub_secret_values, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_current_stderr()),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(_current_stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # ExtraAdder: fields given as `extra=` (e.g. by the Kafka log bridge) become keys of the line.
            foreign_pre_chain=[*shared[:2], structlog.stdlib.ExtraAdder(), *shared[2:]],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                scrub_secret_values,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # py4j logs every gateway round trip at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # Python warnings (a library's DeprecationWarning) become lines of this log, not raw stderr.
    logging.captureWarnings(True)


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


class KafkaLogBridge:
    """confluent-kafka's `logger`: librdkafka's lines into lakesync's log, rate-limited.

    librdkafka logs every failed reconnect (hundreds of "Connection refused" lines a minute while
    a broker is down) and calls a transport failure an error although it retries it by itself.
    Here a failure it retries is a warning, and each client repeats a facility (FAIL, ERROR, ...)
    at most once per `interval_s`, saying how many lines it held back. `quiet` sends everything
    to DEBUG: for probes whose failure lakesync reports itself in one line (preflight).
    """

    def __init__(self, interval_s: float = 30.0, *, quiet: bool = False) -> None:
        self._interval_s = interval_s
        self._quiet = quiet
        self._last: dict[tuple[str, str], float] = {}
        self._held_back: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """Called by confluent-kafka with a stdlib level and ("%s [%s] %s", facility, client, text)."""
        facility, client, text = args if len(args) == 3 else ("", "", fmt % args)
        key = (str(facility), str(client))
        held_back = self._admit(key)
        if held_back is None:
            return
        fields: dict[str, Any] = {"facility": facility, "client": client}
        if held_back:
            fields["held_back"] = held_back
        logging.getLogger("lakesync.kafka").log(self._level(level), "%s", text, extra=fields)

    def _admit(self, key: tuple[str, str]) -> int | None:
        """The count of lines held back since the last one of `key`, or None to hold this one back."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._held_back[key] = self._held_back.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held_back.pop(key, 0)

    def _level(self, level: int) -> int:
        if self._quiet:
            return logging.DEBUG
        if level >= logging.CRITICAL:
            return logging.ERROR
        if level >= logging.ERROR:  # transport and request failures: librdkafka retries them
            return logging.WARNING
        return level

    def __reduce__(self) -> tuple[Any, ...]:
        # Shipped to Spark executors inside producer configs: a fresh bridge there, no lock to pickle.
        return (_fresh_kafka_log_bridge, (self._interval_s, self._quiet))


def _fresh_kafka_log_bridge(interval_s: float, quiet: bool) -> KafkaLogBridge:
    return KafkaLogBridge(interval_s, quiet=quiet)
