"""The one way tests wait for a state: poll a condition until it holds, or check that it keeps holding."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object],
    timeout_s: float = 60.0,
    what: str = "condition",
    *,
    interval_s: float = 0.2,
    alive: Callable[[], object] | None = None,
    details: Callable[[], str] | None = None,
) -> None:
    """Until `condition()` is true; AssertionError after `timeout_s`, or at once when `alive()` turns
    false (what should bring the state about has stopped). `details()` is added to the failure."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return
        if alive is not None and not alive():
            raise AssertionError(f"stopped before {what}{_more(details)}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{_more(details)}")
        time.sleep(interval_s)


def holds_for(condition: Callable[[], object], duration_s: float, what: str, *, interval_s: float = 0.2) -> None:
    """`condition()` stays true for `duration_s` seconds (checked every `interval_s`), else AssertionError."""
    deadline = time.monotonic() + duration_s
    while True:
        assert condition(), f"no longer {what}"
        if time.monotonic() >= deadline:
            return
        time.sleep(interval_s)


def _more(details: Callable[[], str] | None) -> str:
    return f":\n{details()}" if details is not None else ""
