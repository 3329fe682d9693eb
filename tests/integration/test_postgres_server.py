"""The embedded PostgreSQL server is a real server, reached through a psycopg-pool pool."""

from __future__ import annotations

import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from lakesync.config import LakesyncSettings

pytestmark = pytest.mark.integration


def test_pool_round_trip(settings: LakesyncSettings, unique_name: str) -> None:
    """Rows written through one pooled connection are read back through another."""
    pg = settings.postgres
    with ConnectionPool(kwargs=pg.connection_kwargs(), min_size=1, max_size=2, open=True) as pool:
        table = sql.Identifier(unique_name)
        with pool.connection() as conn:
            conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, name text)").format(table))
            with conn.cursor().copy(sql.SQL("COPY {} (id, name) FROM STDIN").format(table)) as copy:
                for row in [(1, "ação"), (2, None), (3, "três")]:
                    copy.write_row(row)
        with pool.connection() as conn:
            rows = conn.execute(sql.SQL("SELECT id, name FROM {} ORDER BY id").format(table)).fetchall()
            version = conn.execute("SHOW server_version").fetchone()
    assert rows == [(1, "ação"), (2, None), (3, "três")]
    assert version is not None and int(version[0].split(".")[0]) >= 13
