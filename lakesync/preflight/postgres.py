"""PostgreSQL reachable with the configured credentials, and the rights each command needs.

`access` says what the command does to the targets: `read` (stream, reconcile: seed and compare),
`apply` (consume: create, alter and write tables, keep offsets and tombstones in schema
lakesync) or `rebuild` (create a shadow table, swap it with the live one).

A failed connection carries no SQLSTATE (libpq reports it as text only), so it is classified by
what answered: nothing at the TCP level is "unreachable"; a server that answered and said no
(password, database, pg_hba.conf, TLS) "refused".
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from typing import Literal

import psycopg
from psycopg import sql

from connectors.postgres import describe
from connectors.postgres_schema import BOOKKEEPING_SCHEMA, OFFSETS_TABLE
from lakesync.config import LakesyncSettings, PostgresSettings, TableMapping
from lakesync.errors import AccessRefusedError, NotReadyError, ServiceUnreachableError
from lakesync.preflight.findings import Finding, fail, ok, warn

Access = Literal["read", "apply", "rebuild"]

_SCHEMA_RIGHTS = "SELECT has_schema_privilege(oid, 'USAGE'), has_schema_privilege(oid, 'CREATE') FROM pg_namespace WHERE nspname = %s"
_TABLE_RIGHTS = (
    "SELECT has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'),"
    " has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'), pg_has_role(c.relowner, 'USAGE')"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')"
)


def check_postgres(settings: LakesyncSettings, tables: Sequence[TableMapping], access: Access) -> list[Finding]:
    """Connect once; then the rights on each target (and, to apply, on the bookkeeping schema)."""
    pg = settings.postgres
    unreachable = _tcp_unreachable(pg)
    if unreachable:
        return [_unreachable(pg, unreachable)]
    try:
        conn = psycopg.connect(**pg.connection_kwargs())
    except psycopg.Error as exc:
        return [_refused(pg, exc)]
    with conn:
        version, user, database, may_create_schemas = conn.execute(
            "SELECT current_setting('server_version'), current_user, current_database(),"
            " has_database_privilege(current_database(), 'CREATE')"
        ).fetchone()  # type: ignore[misc]  # a SELECT without FROM returns its one row
        found = [ok(_subject(pg), f"server {version} accepts user {user!r}")]
        rights = _Rights(conn, _subject(pg), user, database, may_create_schemas)
        for table in tables:  # first: a target's own problem says more than a database-wide one
            found += rights.target(table, access, auto_create=settings.consumer.auto_create_tables)
        if access != "read":
            found.append(rights.bookkeeping())
    return found


class _Rights:
    """The catalog's answers about one user's rights, turned into findings."""

    def __init__(
        self, conn: psycopg.Connection, subject: str, user: str, database: str, may_create_schemas: bool
    ) -> None:
        self.conn, self.subject, self.user = conn, subject, user
        self.database, self.may_create_schemas = database, may_create_schemas

    def bookkeeping(self) -> Finding:
        # lakesync runs CREATE SCHEMA IF NOT EXISTS for its bookkeeping schema and each target
        # schema, which PostgreSQL checks against the database's CREATE right even when it exists.
        if not self.may_create_schemas:
            return self._denied(
                self.subject,
                f"create schemas in database {self.database!r} (lakesync ensures schema {BOOKKEEPING_SCHEMA}, "
                "for offsets and tombstones, and each target schema with CREATE SCHEMA IF NOT EXISTS)",
                f"GRANT CREATE ON DATABASE {self._quote(self.database)}",
            )
        offsets = self.conn.execute(_TABLE_RIGHTS, (BOOKKEEPING_SCHEMA, OFFSETS_TABLE)).fetchone()
        if offsets is not None and not all(offsets[:3]):
            table = self._quote(BOOKKEEPING_SCHEMA, OFFSETS_TABLE)
            return self._denied(self.subject, f"read and write {table}", f"GRANT SELECT, INSERT, UPDATE ON {table}")
        return ok(self.subject, f"user {self.user!r} may keep lakesync's bookkeeping in schema {BOOKKEEPING_SCHEMA}")

    def target(self, table: TableMapping, access: Access, *, auto_create: bool) -> list[Finding]:
        subject = f"target {table.target_schema}.{table.target_table}"
        schema = self.conn.execute(_SCHEMA_RIGHTS, (table.target_schema,)).fetchone()
        if schema is None:
            return [self._missing_schema(subject, table, access, auto_create)]
        usage, create = schema
        if not usage:
            grant = f"GRANT USAGE ON SCHEMA {self._quote(table.target_schema)}"
            return [self._denied(subject, f"use schema {table.target_schema}", grant)]
        rights = self.conn.execute(_TABLE_RIGHTS, (table.target_schema, table.target_table)).fetchone()
        if rights is None:
            return [self._missing_table(subject, table, access, auto_create, may_create=create)]
        return self._table_rights(subject, table, access, rights, may_create=create)

    def _missing_schema(self, subject: str, table: TableMapping, access: Access, auto_create: bool) -> Finding:
        detail = f"schema {table.target_schema!r} does not exist in database {self.database!r}"
        if access == "read":
            return warn(subject, detail + "; the consumer creates it")
        creates = auto_create or access == "rebuild"  # a rebuild always creates its table
        if creates and self.may_create_schemas:
            return ok(subject, detail + f" yet; user {self.user!r} will create it")
        return fail(
            subject,
            detail + (f" and user {self.user!r} may not create it" if creates else ""),
            f"CREATE SCHEMA {self._quote(table.target_schema)} (as its owner), or fix tables.target_schema",
            NotReadyError,
        )

    def _missing_table(
        self, subject: str, table: TableMapping, access: Access, auto_create: bool, *, may_create: bool
    ) -> Finding:
        if access == "read":
            return ok(subject, "absent yet; the consumer creates it")
        if access == "apply" and not auto_create:
            return fail(
                subject,
                "does not exist and consumer.auto_create_tables is off",
                "create it, or set consumer.auto_create_tables = true",
                NotReadyError,
            )
        if not may_create:
            grant = f"GRANT CREATE ON SCHEMA {self._quote(table.target_schema)}"
            return self._denied(subject, f"create tables in schema {table.target_schema}", grant)
        return ok(subject, f"absent yet; user {self.user!r} may create it")

    def _table_rights(
        self, subject: str, table: TableMapping, access: Access, rights: tuple[bool, ...], *, may_create: bool
    ) -> list[Finding]:
        select, insert, update, delete, owner = rights
        target = self._quote(table.target_schema, table.target_table)
        if not select:
            return [self._denied(subject, "read it", f"GRANT SELECT ON {target}")]
        if access == "apply" and not (insert and update and delete):
            return [self._denied(subject, "write it", f"GRANT INSERT, UPDATE, DELETE ON {target}")]
        # A rebuild creates a shadow table beside the live one and swaps the two by renaming.
        if access == "rebuild" and not may_create:
            grant = f"GRANT CREATE ON SCHEMA {self._quote(table.target_schema)}"
            return [self._denied(subject, "create the shadow table a rebuild swaps in", grant)]
        if access == "rebuild" and not owner:
            return [self._denied(subject, "replace it (only its owner may)", f"ALTER TABLE {target} OWNER")]
        found = [ok(subject, f"exists; user {self.user!r} may {'read' if access == 'read' else 'write'} it")]
        if access == "apply" and not owner:
            found.append(
                warn(
                    subject,
                    f"user {self.user!r} does not own it: a column added at the source will stop the consumer",
                    "make the consumer's user its owner, or add such columns by hand first",
                )
            )
        return found

    def _denied(self, subject: str, action: str, grant: str) -> Finding:
        return fail(
            subject, f"user {self.user!r} may not {action}", f"{grant} TO {self._quote(self.user)}", AccessRefusedError
        )

    def _quote(self, *parts: str) -> str:
        """An identifier as SQL text, for the GRANT or CREATE an operator is told to run."""
        return sql.Identifier(*parts).as_string(self.conn)


def _tcp_unreachable(pg: PostgresSettings) -> str | None:
    """Why nothing answers at host:port, or None when something accepts the connection.

    Unix sockets and multi-host lists are left to libpq.
    """
    if pg.host.startswith("/") or "," in pg.host:
        return None
    try:
        socket.create_connection((pg.host, pg.port), timeout=pg.connect_timeout_s).close()
    except socket.gaierror:
        return f"host name {pg.host!r} does not resolve"
    except TimeoutError:
        return f"nothing answered within {pg.connect_timeout_s} s"
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:
            return "connection refused (nothing listens on that port)"
        return exc.strerror or type(exc).__name__
    return None


def _subject(pg: PostgresSettings) -> str:
    return f"PostgreSQL at {describe(pg)}"


def _unreachable(pg: PostgresSettings, reason: str) -> Finding:
    return fail(
        _subject(pg),
        f"unreachable: {reason}",
        "check postgres.host and postgres.port, and that the server runs and accepts TCP connections from here",
        ServiceUnreachableError,
    )


def _refused(pg: PostgresSettings, exc: psycopg.Error) -> Finding:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libpq prefixes the server's answer with where it connected ("connection to server at ...
    # failed: "), which the line already says; keep the answer (display only, not classification).
    message = " ".join(message.rsplit(" failed: ", 1)[-1].split())
    return fail(
        _subject(pg),
        f"refused user {pg.user!r}: {message}",
        "check postgres.user, postgres.password (or its secret file), postgres.dbname, postgres.sslmode "
        "and the server's pg_hba.conf",
        AccessRefusedError,
    )
