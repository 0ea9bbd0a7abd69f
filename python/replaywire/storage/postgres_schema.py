"""The PostgreSQL schema's moving parts: versioned migrations and the daily
partitions of ``chunks`` (see ``schema/postgres/0001_init.sql``).

Everything that changes the schema -- a migration, a partition created or
dropped -- runs in a transaction holding
``pg_advisory_xact_lock(ADVISORY_LOCK_KEY)``, so instances starting,
maintaining or expiring at once take turns instead of failing on each
other's half-made tables.

Partitions are named ``chunks_pYYYYMMDD`` and hold the chunks of sessions
that started on that UTC day. A new one is created apart and then ATTACHed,
which locks ``chunks`` only in SHARE UPDATE EXCLUSIVE mode, so reads and
writes go on meanwhile (``CREATE TABLE ... PARTITION OF`` would take ACCESS
EXCLUSIVE). Dropping one takes ACCESS EXCLUSIVE on ``chunks`` for a few
milliseconds; every DDL statement here gives up after
:data:`DDL_LOCK_TIMEOUT` rather than queue behind a long query (and make
every reader and writer queue behind it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeAlias

import psycopg
from psycopg import sql

from .migrations import Migration, load, pending

# The ASCII bytes "rwschema" read as a big-endian int64. In pg_locks it shows
# as locktype 'advisory' with classid 1920430947 and objid 1751469409.
ADVISORY_LOCK_KEY = 0x7277736368656D61  # 8248188113342786913
DDL_LOCK_TIMEOUT = "2s"  # partition upkeep gives way to long queries, tries again later
MIGRATION_LOCK_TIMEOUT = "30s"  # another instance may be migrating
PARTITIONS_AHEAD = 3  # days after today whose partitions open() and maintain() create

Connection: TypeAlias = psycopg.Connection[Any]

_PARTITIONS = """
SELECT c.relname, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'chunks'::regclass
"""
_PARTITION_NAME = re.compile(r"chunks_p(\d{4})(\d{2})(\d{2})")


# --- time ---------------------------------------------------------------------------


def to_datetime(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime, for a timestamptz.

    ``fromtimestamp`` rounds to the nearest microsecond (ties to even),
    exactly as the Rust COPY encoder does, and ``datetime.timestamp()`` maps
    it back to the nearest float: a float that is a whole number of
    microseconds round-trips bit for bit."""
    return datetime.fromtimestamp(ts, UTC)


def utc_day(ts: float) -> date:
    """The UTC day of epoch seconds ``ts``, rounded to the microsecond first,
    as the timestamptz PostgreSQL stores for it."""
    return to_datetime(ts).date()


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def days_ahead(now: float) -> list[date]:
    """Today (UTC) and the :data:`PARTITIONS_AHEAD` days after it."""
    today = utc_day(now)
    return [today + timedelta(days=n) for n in range(PARTITIONS_AHEAD + 1)]


# --- migrations ---------------------------------------------------------------------


def migrations() -> tuple[Migration, ...]:
    """The ``schema/postgres/NNNN_name.sql`` files, in version order. Each
    runs as one script (simple query protocol) inside the migration
    transaction."""
    return load("postgres")


def migrate(conn: Connection, todo: Sequence[Migration]) -> None:
    """Apply the migrations not yet recorded in ``schema_migrations``, all
    in one transaction holding the advisory lock: instances starting at once
    take turns, and the later ones find nothing left to do. A database
    newer than this code is refused (not retryable)."""
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
        for migration in pending(todo, applied):
            conn.execute(migration.script.encode())  # bytes: a script, not a %s template
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )


def schema_version(conn: Connection) -> int | None:
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return None if row is None else row[0]


# --- partitions ---------------------------------------------------------------------


def partition_name(day: date) -> str:
    """``chunks_pYYYYMMDD``: the partition of sessions started on ``day`` (UTC)."""
    return f"chunks_p{day.year:04d}{day.month:02d}{day.day:02d}"


def attached_partitions(conn: Connection) -> dict[date, float]:
    """The day and row estimate (``pg_class.reltuples``; -1 if never
    analysed) of each partition of ``chunks`` named by :func:`partition_name`."""
    found: dict[date, float] = {}
    for name, tuples in conn.execute(_PARTITIONS):
        match = _PARTITION_NAME.fullmatch(name)
        if match is not None:
            found[date(int(match[1]), int(match[2]), int(match[3]))] = tuples
    return found


def _locked_for_ddl(conn: Connection) -> None:
    conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))


def create_partitions(conn: Connection, days: Iterable[date]) -> tuple[set[date], list[str]]:
    """Attach a partition for each of ``days`` that has none, in one short
    transaction. Returns the days that have one now (``days`` and every
    other attached day) and the names created."""
    created: list[str] = []
    with conn.transaction():
        _locked_for_ddl(conn)
        attached = set(attached_partitions(conn))
        for day in sorted(set(days) - attached):
            name = sql.Identifier(partition_name(day))
            # IF NOT EXISTS takes over a detached table of the same name (the
            # ATTACH checks that its rows belong to the day).
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE chunks INCLUDING ALL)").format(name)
            )
            conn.execute(
                sql.SQL(
                    "ALTER TABLE chunks ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})"
                ).format(
                    name,
                    sql.Literal(midnight(day).isoformat()),
                    sql.Literal(midnight(day + timedelta(days=1)).isoformat()),
                )
            )
            attached.add(day)
            created.append(partition_name(day))
    return attached, created


def drop_partition(conn: Connection, day: date) -> bool:
    """Detach and drop the partition of ``day`` in one short transaction;
    False if it was gone already (another instance's retention)."""
    name = sql.Identifier(partition_name(day))
    with conn.transaction():
        _locked_for_ddl(conn)
        if day not in attached_partitions(conn):
            return False
        conn.execute(sql.SQL("ALTER TABLE chunks DETACH PARTITION {}").format(name))
        conn.execute(sql.SQL("DROP TABLE {}").format(name))
    return True


def count_rows(conn: Connection, day: date) -> int:
    """Exact row count of the partition of ``day``."""
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(partition_name(day)))
    row = conn.execute(query).fetchone()
    return 0 if row is None else int(row[0])
