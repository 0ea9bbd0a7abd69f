"""PostgreSQL: the backend for several instances sharing one database.

Connections: one for writes, held by the storage and checked with an empty
query before a flush when it has been idle for :data:`WRITER_CHECK_IDLE`
seconds (replaced, by connecting directly, when it is dead; a flush that
finds an unchecked one dead is tried once more on a new one),
and a :class:`psycopg_pool.ConnectionPool` for reads and upkeep, all
autocommit; every transaction is an explicit ``conn.transaction()``.
Connecting gives up after :data:`CONNECT_TIMEOUT` seconds and a refused
connection fails at once, so an outage surfaces as a retryable
:class:`StorageError` within seconds (milliseconds when the server is down
but its host up) and the writer turns to its spool; reads wait for a pooled
connection a shorter time while the writer finds the database unreachable.

Writes: one transaction per flush, in four round trips: ``BEGIN`` with the
session upserts and errors in one pipeline, the chunks as one binary
``COPY`` stream built by the Rust core
(:func:`replaywire._core.encode_chunks_copy`) straight into ``chunks`` (two
round trips: the COPY's start, then its data and end), ``COMMIT``. Only if
the ``COPY`` meets a chunk already stored (a retried flush, a spool replay)
is the transaction done again with the chunks through a temporary staging
table and ``INSERT ... ON CONFLICT DO NOTHING``.

Chunks are partitioned by the day their *session started* (see
``schema/postgres/0001_init.sql``). Partitions are made ahead of need: by
:meth:`~PostgresStorage.open` and :meth:`~PostgresStorage.maintain` for today
and the next few days, and by ``write`` for any other day a flush needs (old
sessions resumed, spool replays), in a short transaction of its own before
the data transaction. Retention (:meth:`~PostgresStorage.expire`) drops whole
partitions. How partitions and migrations are made safe for several
instances at once: :mod:`.postgres_schema`.

Error handling: every driver error becomes a :class:`StorageError`, retryable
for connection and operational faults (``psycopg.OperationalError``: lost or
refused connections, pool timeouts, serialization failures, deadlocks, lock
timeouts, disk full; and writes refused by a read-only server during a
failover), not retryable for bad data and programming errors. Messages never
contain the URL or its password.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import fields
from datetime import date, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from .. import _core
from .base import (
    ANY_SESSION,
    Chunk,
    ChunkBatch,
    ExpiredCounts,
    ResumeState,
    SessionError,
    SessionFilter,
    SessionRecord,
    Storage,
    StorageError,
    check_status,
    resume_from,
    window,
)
from .postgres_schema import (
    Connection,
    attached_partitions,
    count_rows,
    create_partitions,
    days_ahead,
    drop_partition,
    midnight,
    migrate,
    migrations,
    schema_version,
    to_datetime,
    utc_day,
)

CONNECT_TIMEOUT = 3  # seconds (libpq takes whole seconds); a URL's own value wins
POOL_TIMEOUT = 5.0  # default seconds a read waits for a pooled connection
DOWN_TIMEOUT = 0.5  # ...while the writer finds the database unreachable
RECONNECT_TIMEOUT = 10.0  # the pool retries a lost connection this long, then starts over
WRITER_CHECK_IDLE = 1.0  # seconds without a write after which a flush first checks its connection
DEFAULT_TENANT = "default"  # every row's tenant until tenants exist

_SESSION_COLUMNS = tuple(f.name for f in fields(SessionRecord))
# timestamptz in the database; floats (epoch seconds) in Python.
_TIME_COLUMNS = ("started_at", "ended_at", "last_event_at", "snapshot_missing_at")
_TIME_POSITIONS = tuple(i for i, name in enumerate(_SESSION_COLUMNS) if name in _TIME_COLUMNS)
_SELECT_SESSION = f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions"
_UPSERT_SESSION = (
    f"INSERT INTO sessions ({', '.join(_SESSION_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(_SESSION_COLUMNS))})"
    " ON CONFLICT (session_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _SESSION_COLUMNS[1:])
)
# The order encode_chunks_copy emits (0001_init.sql's, with 0002's
# received_at before stored_at).
CHUNK_COLUMNS = (
    "session_id",
    "session_started_at",
    "seq",
    "first_index",
    "last_index",
    "event_count",
    "first_ts",
    "last_ts",
    "codec",
    "received_at",
    "stored_at",
    "payload",
)
_COPY_CHUNKS = f"COPY chunks ({', '.join(CHUNK_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_CREATE_STAGING = "CREATE TEMP TABLE chunks_staging (LIKE chunks) ON COMMIT DROP"
_COPY_STAGING = f"COPY chunks_staging ({', '.join(CHUNK_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_INSERT_STAGED = (
    f"INSERT INTO chunks ({', '.join(CHUNK_COLUMNS)})"
    f" SELECT {', '.join(CHUNK_COLUMNS)} FROM chunks_staging ON CONFLICT DO NOTHING"
)
_INSERT_ERROR = (
    "INSERT INTO session_errors (session_id, at, code, message, seq) VALUES (%s, %s, %s, %s, %s)"
)
# The window of Storage.read_chunks in one statement. As in SQLite, the seek
# starts at the last chunk starting at or before from_index; then a running
# sum of the events from from_index on, over the chunks *before* each row,
# keeps rows until max_events is reached, so payloads past the window are
# never sent. Chunks are not pruned by partition: one without a session row
# may sit in another day's partition than its session's.
_READ_CHUNKS = """
SELECT session_id, seq, first_index, event_count, first_ts, last_ts, codec, payload, received_at
FROM (
    SELECT *, COALESCE(SUM(last_index + 1 - GREATEST(first_index, %(from)s)) OVER (
        ORDER BY first_index, seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
    FROM chunks
    WHERE session_id = %(sid)s
      AND first_index >= COALESCE((SELECT MAX(first_index) FROM chunks
                                   WHERE session_id = %(sid)s AND first_index <= %(from)s),
                                  %(from)s)
      AND last_index >= %(from)s
) AS w
WHERE before < %(max)s
ORDER BY first_index, seq
"""
# One statement, so one snapshot; no row when the session has none.
_RESUME_STATE = """
SELECT (SELECT MAX(last_index) + 1 FROM chunks WHERE session_id = %(sid)s),
       ARRAY(SELECT seq FROM chunks WHERE session_id = %(sid)s ORDER BY seq)
FROM sessions WHERE session_id = %(sid)s
"""
# Sessions that started before the cutoff and their errors, and every error
# recorded before it; returns how many of each.
_EXPIRE_ROWS = """
WITH gone AS (
    DELETE FROM sessions WHERE started_at < %(limit)s RETURNING session_id
), errors AS (
    DELETE FROM session_errors
    WHERE at < %(limit)s OR session_id IN (SELECT session_id FROM gone)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM errors)
"""
# SQLSTATEs worth retrying beyond OperationalError: a server turned read-only
# (a failover in progress; the new primary will take the retry).
_RETRYABLE_STATES = frozenset({"25006"})


def _session_params(record: SessionRecord) -> list[Any]:
    values = [getattr(record, name) for name in _SESSION_COLUMNS]
    for i in _TIME_POSITIONS:
        if values[i] is not None:
            values[i] = to_datetime(values[i])
    return values


def _session_from_row(row: Sequence[Any]) -> SessionRecord:
    values = list(row)
    for i in _TIME_POSITIONS:
        if values[i] is not None:
            values[i] = values[i].timestamp()
    return SessionRecord(*values)


def _chunk_from_row(row: Sequence[Any]) -> Chunk:
    sid, seq, first_index, count, first_ts, last_ts, codec, payload, received_at = row
    received = None if received_at is None else received_at.timestamp()
    return Chunk(sid, seq, first_index, count, first_ts, last_ts, codec, payload, received)


def _first_of_each(chunks: Sequence[Chunk]) -> list[Chunk]:
    """Chunks with duplicate (session_id, seq) dropped, the first kept: the
    contract's "first stored wins" within one write."""
    seen: set[tuple[str, int]] = set()
    out: list[Chunk] = []
    for chunk in chunks:
        key = (chunk.session_id, chunk.seq)
        if key not in seen:
            seen.add(key)
            out.append(chunk)
    return out


def _secrets(url: str) -> list[str]:
    """What must never appear in a message: the URL and its password."""
    found = [url]
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        found += [password, unquote(password)]
    match = re.search(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url)
    if match:
        found.append(match[1].strip("'"))
    return sorted({s for s in found if s}, key=len, reverse=True)


class PostgresStorage(Storage):
    """PostgreSQL storage at ``url`` (``postgresql://user:pass@host:5432/db``,
    or any libpq connection string).

    Connections: ``pool_size`` in all (at least two). One belongs to
    :meth:`write` (the writer calls it from one thread at a time); it is
    checked with an empty query before each flush and replaced when dead,
    connecting directly, so while the database refuses connections a write
    fails in milliseconds and the writer can turn to its spool at once. The
    others are a :class:`psycopg_pool.ConnectionPool` for reads and upkeep; a
    read waits up to ``timeout`` seconds for one, or :data:`DOWN_TIMEOUT`
    while the writer's connection is known lost, then fails with a
    retryable :class:`StorageError`.

    Resource handling: ``open()`` connects, applies migrations, creates the
    coming days' partitions and opens the pool; ``close()`` waits for a
    write in progress, then closes the writer's connection and the pool (a
    pooled connection in use is closed when its call ends).

    Tenancy: every row is written with tenant ``'default'`` and
    :meth:`list_sessions` lists that tenant (so the tenant-leading indexes
    serve it); lookups by session id do not filter, as ids are unique across
    tenants (see the schema)."""

    name = "postgres"

    def __init__(self, url: str, *, pool_size: int = 4, timeout: float = POOL_TIMEOUT) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._url = url
        self._pool_size = pool_size
        self._timeout = timeout
        self._secrets = _secrets(url)
        self._lifecycle = threading.Lock()
        self._conninfo: str | None = None  # set while open
        self._write_lock = threading.Lock()
        self._writer: Connection | None = None
        self._writer_lost = False  # its last connect or check failed: the database is down
        self._writer_used = -math.inf  # monotonic time of the writer's last successful write
        self._pool: ConnectionPool[Connection] | None = None
        self._partitions_lock = threading.Lock()
        self._partitions: set[date] = set()  # attached, as far as this instance knows

    def __repr__(self) -> str:
        return f"PostgresStorage(<url>, pool_size={self._pool_size})"

    # --- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        with self._lifecycle, self._write_lock:
            if self._conninfo is not None:
                return
            conninfo = self._parse_url()
            with self._translated("open"):
                writer = psycopg.connect(conninfo, autocommit=True)
                try:
                    migrate(writer, migrations())
                    self._ensure_partitions(writer, days_ahead(time.time()))
                    pool: ConnectionPool[Connection] = ConnectionPool(
                        conninfo,
                        min_size=1,
                        max_size=max(1, self._pool_size - 1),
                        open=False,
                        kwargs={"autocommit": True},
                        check=ConnectionPool.check_connection,
                        timeout=self._timeout,
                        reconnect_timeout=RECONNECT_TIMEOUT,
                        name="replaywire",
                    )
                    try:
                        pool.open(wait=True, timeout=self._timeout)
                    except BaseException:
                        pool.close()
                        raise
                except BaseException:
                    writer.close()
                    raise
            self._conninfo, self._writer, self._pool = conninfo, writer, pool
            self._writer_lost = False

    def close(self) -> None:
        with self._lifecycle, self._write_lock:
            self._conninfo = None
            writer, self._writer = self._writer, None
            pool, self._pool = self._pool, None
            if writer is not None:
                writer.close()
            if pool is not None:
                pool.close()
            with self._partitions_lock:
                self._partitions.clear()

    def _parse_url(self) -> str:
        """The libpq connection string to use: the URL's, with our defaults."""
        problem: str | None
        try:
            params = conninfo_to_dict(self._url)
        except psycopg.Error as exc:
            problem = self._redact(str(exc).strip())
        else:
            problem = None
        if problem is not None:
            # Raised outside the except block: the driver's exception, which
            # may quote the URL, must not ride along as __context__.
            raise StorageError(f"bad PostgreSQL URL: {problem}")
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        params.setdefault("application_name", "replaywire")
        params["client_encoding"] = "UTF8"  # the COPY stream's text is UTF-8
        return make_conninfo("", **params)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextmanager
    def _translated(self, what: str, *, waited: float | None = None) -> Iterator[None]:
        """Turn psycopg's and the pool's exceptions into :class:`StorageError`."""
        try:
            yield
        except StorageError:
            raise
        except PoolClosed as exc:
            raise StorageError("storage is not open") from exc
        except PoolTimeout as exc:
            raise StorageError(
                f"postgres {what}: no connection within {waited or self._timeout:g} s"
                " (database unreachable, or every pooled connection busy)",
                retryable=True,
            ) from exc
        except psycopg.Error as exc:
            message = self._redact(str(exc).strip()) or type(exc).__name__
            state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
            retryable = isinstance(exc, psycopg.OperationalError) or (
                exc.sqlstate in _RETRYABLE_STATES
            )
            raise StorageError(f"postgres {what}{state}: {message}", retryable=retryable) from exc

    @contextmanager
    def _connection(self, what: str) -> Iterator[Connection]:
        """A pooled connection, for reads and upkeep."""
        pool = self._pool
        if pool is None:
            raise StorageError("storage is not open")
        timeout = DOWN_TIMEOUT if self._writer_lost else self._timeout
        with self._translated(what, waited=timeout), pool.connection(timeout) as conn:
            yield conn

    def _writer_connection(self, *, check: bool = True) -> Connection:
        """The writer's connection, alive as far as one round trip can tell
        (with ``check``; else as far as psycopg knows); a new one if it was
        lost. Call with ``_write_lock`` held."""
        if self._conninfo is None:
            raise StorageError("storage is not open")
        conn = self._writer
        if conn is not None and not conn.broken:
            if not check:
                return conn
            try:
                conn.execute("")
            except psycopg.OperationalError:
                pass  # a restart, a failover, a network cut: connect again
            else:
                return conn
        self._writer = None
        if conn is not None:
            conn.close()
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.OperationalError:
            self._writer_lost = True
            raise
        self._writer, self._writer_lost = conn, False
        return conn

    # --- writes --------------------------------------------------------------

    def write(
        self,
        sessions: Sequence[SessionRecord],
        chunks: Sequence[Chunk],
        errors: Sequence[SessionError],
    ) -> None:
        """See :meth:`Storage.write`. Session rows are upserted in session_id
        order, so two instances writing the same sessions cannot deadlock.

        A chunk goes to the partition of its session's ``started_at``, taken
        from ``sessions`` or else from the sessions table. A chunk whose
        session has no row anywhere (the server never writes one: the hub
        queues the record with every chunk) goes where that session's earlier
        chunks are, else under the day of this write."""
        check_status(sessions)
        stored_at = time.time()
        if not isinstance(chunks, ChunkBatch):  # a flush's are deduplicated in Rust
            chunks = _first_of_each(chunks)
        try:
            session_rows = [_session_params(r) for r in sorted(sessions, key=_session_id)]
            error_rows = [
                (e.session_id, to_datetime(e.at), e.code, e.message, e.seq) for e in errors
            ]
        except (ValueError, OverflowError, OSError) as exc:
            raise StorageError(f"postgres write: time out of range: {exc}") from exc
        with self._write_lock, self._translated("write"):
            # Back-to-back flushes skip the check's round trip: a connection
            # lost since the last one fails this one's first statement, and
            # the flush is tried once more on a checked (or new) connection.
            checked = time.monotonic() - self._writer_used >= WRITER_CHECK_IDLE
            conn = self._writer_connection(check=checked)
            try:
                self._write_flush(conn, sessions, session_rows, chunks, error_rows, stored_at)
            except psycopg.OperationalError:
                if checked or not conn.broken:
                    raise
                conn = self._writer_connection()
                self._write_flush(conn, sessions, session_rows, chunks, error_rows, stored_at)
            self._writer_used = time.monotonic()

    def _write_flush(
        self,
        conn: Connection,
        sessions: Sequence[SessionRecord],
        session_rows: Sequence[Sequence[Any]],
        chunks: Sequence[Chunk],
        error_rows: Sequence[Sequence[Any]],
        stored_at: float,
    ) -> None:
        """One flush's transaction (see the module's docstring)."""
        data = None
        if chunks:
            starts = self._chunk_starts(conn, sessions, chunks, stored_at)
            self._ensure_partitions(conn, {utc_day(t) for t in starts.values()})
            data = _encode(chunks, starts, stored_at)
        try:
            try:
                _write_transaction(conn, session_rows, data, error_rows, staged=False)
            except pg_errors.UniqueViolation:
                # Some chunks are stored already (a retried flush, a spool
                # replay): the flush again, its chunks through a staging
                # table, keeping what is stored (the first stored wins).
                _write_transaction(conn, session_rows, data, error_rows, staged=True)
        except pg_errors.CheckViolation as exc:
            if "no partition" not in str(exc):
                raise
            # A partition this instance knew was dropped (retention by
            # another instance): forget what we knew and let the retry
            # create it again.
            with self._partitions_lock:
                self._partitions.clear()
            raise StorageError(f"postgres write: {exc}", retryable=True) from exc

    def _chunk_starts(
        self,
        conn: Connection,
        sessions: Sequence[SessionRecord],
        chunks: Sequence[Chunk],
        stored_at: float,
    ) -> dict[str, float]:
        """The started_at of every chunk's session: its partition key."""
        given = {r.session_id: r.started_at for r in sessions}
        needed = (
            set(chunks.flush.chunk_sessions())
            if isinstance(chunks, ChunkBatch)
            else {c.session_id for c in chunks}
        )
        starts = {sid: given[sid] for sid in needed if sid in given}
        missing = list(needed - starts.keys())
        if missing:
            rows = conn.execute(
                "SELECT session_id, started_at FROM sessions WHERE session_id = ANY(%s)",
                (missing,),
            )
            starts.update((sid, started.timestamp()) for sid, started in rows)
            missing = [sid for sid in missing if sid not in starts]
        if missing:  # no session row: see write()
            rows = conn.execute(
                "SELECT session_id, MIN(session_started_at) FROM chunks"
                " WHERE session_id = ANY(%s) GROUP BY session_id",
                (missing,),
            )
            starts.update((sid, started.timestamp()) for sid, started in rows)
            starts.update((sid, stored_at) for sid in missing if sid not in starts)
        return starts

    # --- partitions and retention --------------------------------------------

    def maintain(self, now: float) -> None:
        """Create the partitions of today and the next few days
        (``PARTITIONS_AHEAD``) that do not exist yet. Call it at least daily;
        a lock timeout (a long query on ``chunks``) is a retryable
        :class:`StorageError`, to be tried again next time."""
        with self._connection("maintain") as conn:
            self._ensure_partitions(conn, days_ahead(now))

    def _ensure_partitions(self, conn: Connection, days: Iterable[date]) -> None:
        """Make sure each of ``days`` has a partition. Known partitions are
        cached, so a flush whose days all exist costs nothing."""
        with self._partitions_lock:
            missing = set(days) - self._partitions
        if missing:
            attached, _ = create_partitions(conn, missing)
            with self._partitions_lock:
                self._partitions |= attached

    def expire(self, cutoff: float) -> ExpiredCounts:
        """See :meth:`Storage.expire`. First every partition whose day ends
        at or before ``cutoff`` is detached and dropped, each in a short
        transaction of its own (a lock timeout is a retryable error; what
        was dropped stays dropped). Then, in one transaction, the chunks left
        in the partition that holds the cutoff, the sessions and their
        errors are deleted row by row.

        ``chunks`` counts a dropped partition by ``pg_class.reltuples``
        (exactly only if it was never analysed). Chunks stored without a
        session row are filed under the day they were written (see
        :meth:`write`) and expire with it."""
        limit = to_datetime(cutoff)
        partitions = chunks = 0
        with self._connection("expire") as conn:
            for day, tuples in sorted(attached_partitions(conn).items()):
                if midnight(day + timedelta(days=1)) > limit:
                    continue
                estimate = count_rows(conn, day) if tuples < 0 else round(tuples)
                with self._partitions_lock:
                    self._partitions.discard(day)
                if drop_partition(conn, day):
                    partitions += 1
                    chunks += estimate
            with conn.transaction():
                chunks += conn.execute(
                    "DELETE FROM chunks WHERE session_started_at < %s", (limit,)
                ).rowcount
                row = conn.execute(_EXPIRE_ROWS, {"limit": limit}).fetchone()
        assert row is not None
        return ExpiredCounts(sessions=row[0], chunks=chunks, errors=row[1], partitions=partitions)

    # --- reads ---------------------------------------------------------------

    def get_session(self, session_id: str) -> SessionRecord | None:
        with self._connection("get_session") as conn:
            row = conn.execute(
                f"{_SELECT_SESSION} WHERE session_id = %s", (session_id,), binary=True
            ).fetchone()
        return None if row is None else _session_from_row(row)

    def list_sessions(
        self,
        *,
        status: str | None = None,
        limit: int = 100,
        prefix: str = "",
        where: SessionFilter = ANY_SESSION,
    ) -> list[SessionRecord]:
        if limit <= 0:
            return []
        clause = "tenant = %(tenant)s"
        args: dict[str, Any] = {"tenant": DEFAULT_TENANT, "limit": limit}
        if prefix:
            # starts_with, not LIKE (whose _ and % a tenant name could hold)
            # nor a range (text order follows the database's collation).
            clause += " AND starts_with(session_id, %(prefix)s)"
            args["prefix"] = prefix
        if status == "active":
            clause += " AND status = 'active'"  # a literal, so the partial index matches
        elif status is not None:
            clause += " AND status = %(status)s"
            args["status"] = status
        if where.user_id is not None:
            clause += " AND user_id = %(user_id)s"
            args["user_id"] = where.user_id
        if where.url is not None:  # strpos, not LIKE: case-sensitive, no wildcards
            clause += " AND strpos(url, %(url)s) > 0"
            args["url"] = where.url
        if where.since is not None:
            clause += " AND started_at >= to_timestamp(%(since)s)"
            args["since"] = where.since
        if where.until is not None:
            clause += " AND started_at < to_timestamp(%(until)s)"
            args["until"] = where.until
        if where.min_duration is not None:
            clause += (
                " AND EXTRACT(EPOCH FROM COALESCE(ended_at, last_event_at, started_at)"
                " - started_at) >= %(min_duration)s"
            )
            args["min_duration"] = where.min_duration
        if where.before is not None:
            # Whole microseconds, as stored: a float through to_timestamp
            # could land a microsecond off and repeat or skip a row.
            clause += (
                " AND (started_at, session_id) < (to_timestamp(0)"
                " + %(before_us)s * interval '1 microsecond', %(before_id)s)"
            )
            args["before_us"] = round(where.before[0] * 1_000_000)
            args["before_id"] = where.before[1]
        query = (
            f"{_SELECT_SESSION} WHERE {clause}"
            " ORDER BY started_at DESC, session_id DESC LIMIT %(limit)s"
        )
        with self._connection("list_sessions") as conn:
            rows = conn.execute(query, args, binary=True).fetchall()
        return [_session_from_row(row) for row in rows]

    def read_chunks(self, session_id: str, from_index: int, max_events: int) -> list[Chunk]:
        if max_events <= 0:
            return []
        args = {"sid": session_id, "from": from_index, "max": max_events}
        with self._connection("read_chunks") as conn:
            rows = conn.execute(_READ_CHUNKS, args, binary=True).fetchall()
        # The query already windowed; window() again costs nothing and keeps
        # the rule in one place.
        return window((_chunk_from_row(row) for row in rows), from_index, max_events)

    def resume_state(self, session_id: str) -> ResumeState | None:
        with self._connection("resume_state") as conn:
            row = conn.execute(_RESUME_STATE, {"sid": session_id}, binary=True).fetchone()
        if row is None:
            return None
        end, seqs = row
        return resume_from(end or 0, seqs)

    def session_errors(self, session_id: str, limit: int = 100) -> list[SessionError]:
        if limit <= 0:
            return []
        with self._connection("session_errors") as conn:
            rows = conn.execute(
                "SELECT session_id, at, code, message, seq FROM session_errors"
                " WHERE session_id = %s ORDER BY at DESC, id DESC LIMIT %s",
                (session_id, limit),
                binary=True,
            ).fetchall()
        return [SessionError(sid, at.timestamp(), *rest) for sid, at, *rest in rows]

    def check(self) -> None:
        latest = migrations()[-1].version
        with self._connection("check") as conn:
            version = schema_version(conn)
        if version != latest:
            raise StorageError(f"schema version is {version}, expected {latest}")


def _session_id(record: SessionRecord) -> str:
    return record.session_id


def _encode(chunks: Sequence[Chunk], starts: Mapping[str, float], stored_at: float) -> bytes:
    try:
        if isinstance(chunks, ChunkBatch):  # straight from Rust, GIL released
            return chunks.flush.encode_copy(dict(starts), stored_at)
        return _core.encode_chunks_copy(chunks, starts, stored_at)
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        # Nothing PostgreSQL could store: retrying will not help.
        raise StorageError(f"postgres write: cannot encode chunks: {exc}") from exc


def _write_transaction(
    conn: Connection,
    session_rows: Sequence[Sequence[Any]],
    data: bytes | None,
    error_rows: Sequence[Sequence[Any]],
    *,
    staged: bool,
) -> None:
    """One flush's transaction in four round trips: ``BEGIN`` with every
    statement but the COPY in one pipeline, the COPY (it cannot be
    pipelined; two), ``COMMIT``. Begun and ended by hand, not with
    ``conn.transaction()``, whose ``BEGIN`` would be a round trip of its
    own. ``staged``: the COPY goes to a staging table, and from there into
    ``chunks`` skipping the chunks stored already."""
    with conn.cursor() as cur:
        try:
            with conn.pipeline():
                cur.execute("BEGIN")
                if session_rows:
                    cur.executemany(_UPSERT_SESSION, session_rows)
                if error_rows:
                    cur.executemany(_INSERT_ERROR, error_rows)
                if data is not None and staged:
                    cur.execute(_CREATE_STAGING)
            if data is not None:
                with cur.copy(_COPY_STAGING if staged else _COPY_CHUNKS) as copy:
                    copy.write(data)
            with conn.pipeline():
                if data is not None and staged:
                    cur.execute(_INSERT_STAGED)
                cur.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise


def _rollback(conn: Connection) -> None:
    """End a failed transaction, if the connection still has one; a
    connection that fails even that is left for the next write to replace."""
    if conn.broken or conn.info.transaction_status == TransactionStatus.IDLE:
        return
    with suppress(psycopg.Error):
        conn.execute("ROLLBACK")
