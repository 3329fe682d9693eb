"""Isolating many poison records in one batch holds a bounded number of locks (no SQLSTATE 53200)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from lakesync.config import LakesyncSettings
from tests.support.consumer_run import run_until_caught_up
from tests.support.consumer_topics import produce, rows, upsert

pytestmark = pytest.mark.integration

RECORDS, EVERY = 4000, 10


def test_a_batch_where_every_tenth_record_is_poison_isolates_them_within_bounded_locks(
    table_settings: LakesyncSettings,
) -> None:
    """Each part the bisection applies must not keep a staging table (and its locks) until commit:
    with thousands of parts PostgreSQL's shared lock table runs out and the batch can never commit."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    produce(table_settings, topic, [upsert(name, k, 1) for k in range(RECORDS)])
    run_until_caught_up(table_settings, topic, timeout_s=180)  # the keys exist: updates go through the staged merge

    def update(k: int) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
        key, value, headers = upsert(name, k, 2, price="2.00")
        # numeric(10,2) overflows: PostgreSQL refuses the row (SQLSTATE 22003) inside the batch.
        assert value is not None
        return key, value.replace(b'"2.00"', b'"123456789012.00"') if k % EVERY == 0 else value, headers

    produce(table_settings, topic, [update(k) for k in range(RECORDS)])
    peak = _LockPeak(table_settings)
    with peak:
        run_until_caught_up(table_settings, topic, timeout_s=300)
    prices = {r[0]: r[2] for r in rows(table_settings, name)}
    assert {k for k, v in prices.items() if str(v) == "2.00"} == {k for k in range(RECORDS) if k % EVERY}
    assert peak.value < 200, f"one backend held {peak.value} locks while isolating {RECORDS // EVERY} records"


class _LockPeak:
    """The most locks any one other backend held, sampled every 5 ms while the block runs."""

    def __init__(self, settings: LakesyncSettings) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.value = 0

    def __enter__(self) -> _LockPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _sample(self) -> None:
        query = (
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pg_locks"
            " WHERE pid <> pg_backend_pid() GROUP BY pid) AS per_backend"
        )
        with psycopg.connect(**self._settings.postgres.connection_kwargs(), autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(query).fetchone()
                self.value = max(self.value, int(row[0]) if row else 0)
                self._stop.wait(0.005)
