"""The embedded default: one SQLite file in WAL mode.

WAL lets readers run while a write transaction is open, so history reads are
never stuck behind a long flush. ``synchronous=NORMAL`` in WAL mode survives a
crash of the process (committed data is in the WAL, which the OS holds); only
a power loss or kernel crash may drop the last transactions.
(``synchronous=FULL`` would fsync the WAL at every commit to survive those
too, at the price of one fsync per flush.)

Connections: one writer connection, guarded by a lock, and a small pool of
reader connections (``query_only``), one per concurrent reader thread. A pool
rather than ``threading.local`` because trio's worker threads come and go;
a pool can close every connection it made on :meth:`SqliteStorage.close`.

Checkpoints (copying the WAL back into the database file, with an fsync of
each) are not left to the commit that fills the WAL, as SQLite does by
default: that commit, and the acks waiting for it, would wait for the
copy and both fsyncs. A thread of the storage's own, with a connection of
its own, runs a passive checkpoint (one that never blocks the writer or
readers) at most every :data:`CHECKPOINT_INTERVAL` seconds of writing. The
writer's own automatic checkpoint stays as the bound on the WAL's size
(:data:`WAL_AUTOCHECKPOINT_BYTES`): a passive checkpoint racing
back-to-back flushes rarely leaves the WAL entirely copied, which SQLite
needs before it starts the WAL over; the writer's then finds little left
to copy.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import fields
from os import PathLike
from pathlib import Path
from typing import Any

import structlog

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
    id_range,
    resume_from,
    window,
)
from .migrations import Migration, load, pending

log = structlog.get_logger("replaywire.storage")

BUSY_TIMEOUT = 5.0  # seconds a connection waits for a lock before SQLITE_BUSY
MAX_IDLE_READERS = 8  # reader connections kept open between reads
CHECKPOINT_INTERVAL = 0.1  # seconds of writes between two background checkpoints
WAL_AUTOCHECKPOINT_BYTES = 64 * 1024 * 1024  # the writer checkpoints itself past this
# Pages of a new database file. A stored chunk is a few KB (zstd), about a
# 4 KiB page each at SQLite's default: 16 KiB pages hold several, so a flush
# writes fewer pages to the WAL and the checkpoint copies fewer back (durable
# ingest 544k -> 595k events/s, p99 42 -> 31 ms, alternating runs; 64 KiB
# did no better). An existing file keeps the size it was made with.
PAGE_SIZE = 16384

_SESSION_COLUMNS = tuple(f.name for f in fields(SessionRecord))
_SELECT_SESSION = f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions"
_UPSERT_SESSION = (
    f"INSERT INTO sessions ({', '.join(_SESSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_SESSION_COLUMNS))}) "
    "ON CONFLICT (session_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _SESSION_COLUMNS[1:])
)
# In Chunk's field order, so that a row is Chunk(*row).
_CHUNK_COLUMNS = (
    "session_id, seq, first_index, event_count, first_ts, last_ts, codec, payload, received_at"
)
_INSERT_CHUNK = (
    "INSERT INTO chunks (session_id, seq, first_index, event_count, first_ts, last_ts, codec,"
    " stored_at, payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id, seq) DO NOTHING"
)
_INSERT_ERROR = (
    "INSERT INTO session_errors (session_id, at, code, message, seq) VALUES (?, ?, ?, ?, ?)"
)
# The chunk holding from_index (the last one starting at or before it) and
# everything after, walking the (session_id, first_index) index; the scalar
# subquery is evaluated once.
_READ_CHUNKS = (
    f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE session_id = ?1 AND first_index >= COALESCE("
    "(SELECT MAX(first_index) FROM chunks WHERE session_id = ?1 AND first_index <= ?2), ?2)"
    " ORDER BY first_index, seq"
)
# The sessions expire() deletes, through the sessions_started_id index.
_EXPIRED = "SELECT session_id FROM sessions WHERE started_at < ?1"
_RETRYABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_PROTOCOL")


def migrations() -> tuple[Migration, ...]:
    """The ``schema/sqlite/NNNN_name.sql`` files, in version order."""
    return load("sqlite")


def _statements(script: str) -> tuple[str, ...]:
    """Split a script into statements. Not ``executescript``: that commits
    first, and a migration must run inside our transaction."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    leftover = "".join(ln for ln in pending.splitlines() if not ln.lstrip().startswith("--"))
    if leftover.strip():
        raise StorageError(f"unterminated statement in migration: {leftover.strip()[:60]!r}")
    return tuple(out)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn sqlite3's exceptions into :class:`StorageError`."""
    try:
        yield
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "") or ""
        raise StorageError(f"sqlite {what}: {exc}", retryable=name.startswith(_RETRYABLE)) from exc


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class SqliteStorage(Storage):
    """SQLite file storage. ``open()`` creates the file's folder, switches to
    WAL and applies migrations; ``close()`` closes the writer and every pooled
    reader (a reader in use is closed when its read ends)."""

    name = "sqlite"

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._open = False
        self._checkpoint_due = threading.Event()  # set by writes, and by close
        self._checkpointer: threading.Thread | None = None
        self._last_checkpoint = 0.0  # monotonic time the checkpointer was last woken

    def __repr__(self) -> str:
        return f"SqliteStorage({str(self.path)!r})"

    # --- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create folder for {self.path}: {exc}") from exc
            with _translated("open"):
                conn = self._connect()
                try:
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if str(mode).lower() != "wal":
                        raise StorageError(f"{self.path}: WAL mode unavailable (got {mode!r})")
                    _migrate(conn, migrations())
                except BaseException:
                    conn.close()
                    raise
            self._writer = conn
            with self._pool_lock:
                self._open = True
            self._checkpoint_due.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name=f"checkpoints of {self.path}", daemon=True
            )
            self._checkpointer.start()

    def close(self) -> None:
        with self._write_lock:
            with self._pool_lock:
                self._open = False
                idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()
            checkpointer, self._checkpointer = self._checkpointer, None
            if checkpointer is not None:
                self._checkpoint_due.set()
                checkpointer.join()
            if self._writer is not None:
                self._writer.close()  # the last connection: SQLite checkpoints the rest
                self._writer = None

    def _checkpoint_loop(self) -> None:
        """The checkpointer thread: a passive checkpoint each time a write
        asks for one, until :meth:`close`. A failed checkpoint is only
        logged: the WAL keeps everything meanwhile, and the next one
        retries."""
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._checkpoint_due.wait()
                self._checkpoint_due.clear()
                with self._pool_lock:
                    if not self._open:
                        return
                try:
                    if conn is None:
                        conn = self._connect(reader=True)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    log.warning("sqlite_checkpoint_failed", path=str(self.path), error=str(exc))
        finally:
            if conn is not None:
                conn.close()

    def _connect(self, *, reader: bool = False) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        # check_same_thread=False: the writer and pooled readers move between
        # worker threads, one thread at a time.
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            if reader:
                conn.execute("PRAGMA query_only = ON")
            else:
                # Takes effect only while the file is new (before WAL mode).
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                pages = max(1, WAL_AUTOCHECKPOINT_BYTES // page_size)
                conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _reader(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            if not self._open:
                raise StorageError("storage is not open")
            conn = self._idle.pop() if self._idle else None
        with _translated(what):
            if conn is None:
                conn = self._connect(reader=True)
            try:
                yield conn
            finally:
                _rollback(conn)
                with self._pool_lock:
                    keep = self._open and len(self._idle) < MAX_IDLE_READERS
                    if keep:
                        self._idle.append(conn)
                if not keep:
                    conn.close()

    # --- writes --------------------------------------------------------------

    def write(
        self,
        sessions: Sequence[SessionRecord],
        chunks: Sequence[Chunk],
        errors: Sequence[SessionError],
    ) -> None:
        check_status(sessions)
        now = time.time()
        with self._write_lock, _translated("write"):
            conn = self._writer
            if conn is None:
                raise StorageError("storage is not open")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if sessions:
                    conn.executemany(
                        _UPSERT_SESSION,
                        [tuple(getattr(r, c) for c in _SESSION_COLUMNS) for r in sessions],
                    )
                if chunks:
                    conn.executemany(_INSERT_CHUNK, _chunk_rows(chunks, now))
                if errors:
                    conn.executemany(
                        _INSERT_ERROR,
                        [(e.session_id, e.at, e.code, e.message, e.seq) for e in errors],
                    )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        now = time.monotonic()
        if now - self._last_checkpoint >= CHECKPOINT_INTERVAL:
            self._last_checkpoint = now
            self._checkpoint_due.set()

    # --- reads ---------------------------------------------------------------

    def get_session(self, session_id: str) -> SessionRecord | None:
        with self._reader("get_session") as conn:
            row = conn.execute(f"{_SELECT_SESSION} WHERE session_id = ?", (session_id,)).fetchone()
        return None if row is None else SessionRecord(*row)

    def list_sessions(
        self,
        *,
        status: str | None = None,
        limit: int = 100,
        prefix: str = "",
        where: SessionFilter = ANY_SESSION,
    ) -> list[SessionRecord]:
        if limit <= 0:  # SQLite reads LIMIT -1 as "no limit"
            return []
        conditions, args = id_range(prefix, "?")
        if status is not None:
            conditions.append("status = ?")
            args.append(status)
        if where.user_id is not None:
            conditions.append("user_id = ?")
            args.append(where.user_id)
        if where.url is not None:  # instr, not LIKE: case-sensitive, no wildcards
            conditions.append("instr(url, ?) > 0")
            args.append(where.url)
        if where.since is not None:
            conditions.append("started_at >= ?")
            args.append(where.since)
        if where.until is not None:
            conditions.append("started_at < ?")
            args.append(where.until)
        if where.min_duration is not None:
            conditions.append("COALESCE(ended_at, last_event_at, started_at) - started_at >= ?")
            args.append(where.min_duration)
        if where.before is not None:
            conditions.append("(started_at, session_id) < (?, ?)")
            args.extend(where.before)
        clause = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"{_SELECT_SESSION} {clause} ORDER BY started_at DESC, session_id DESC LIMIT ?"
        with self._reader("list_sessions") as conn:
            rows = conn.execute(sql, [*args, limit]).fetchall()
        return [SessionRecord(*row) for row in rows]

    def read_chunks(self, session_id: str, from_index: int, max_events: int) -> list[Chunk]:
        if max_events <= 0:
            return []
        with (
            self._reader("read_chunks") as conn,
            closing(conn.execute(_READ_CHUNKS, (session_id, from_index))) as cursor,
        ):
            # Lazy: rows (and their payloads) past the window are never fetched.
            return window((Chunk(*row) for row in cursor), from_index, max_events)

    def resume_state(self, session_id: str) -> ResumeState | None:
        with self._reader("resume_state") as conn:
            conn.execute("BEGIN")  # one snapshot for the three queries
            if conn.execute(
                "SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone():
                (end,) = conn.execute(
                    "SELECT MAX(first_index + event_count) FROM chunks WHERE session_id = ?",
                    (session_id,),
                ).fetchone()
                seqs = conn.execute(
                    "SELECT seq FROM chunks WHERE session_id = ? ORDER BY seq", (session_id,)
                ).fetchall()
                return resume_from(end or 0, (s for (s,) in seqs))
            return None

    def session_errors(self, session_id: str, limit: int = 100) -> list[SessionError]:
        if limit <= 0:
            return []
        with self._reader("session_errors") as conn:
            rows = conn.execute(
                "SELECT session_id, at, code, message, seq FROM session_errors"
                " WHERE session_id = ? ORDER BY at DESC, id DESC LIMIT ?",
                (session_id, limit),
            ).fetchall()
        return [SessionError(*row) for row in rows]

    def expire(self, cutoff: float) -> ExpiredCounts:
        """Row deletes in one IMMEDIATE transaction (the writer waits for
        it, readers do not). Chunks stored without a session row are kept:
        nothing says when their session started."""
        with self._write_lock, _translated("expire"):
            conn = self._writer
            if conn is None:
                raise StorageError("storage is not open")
            conn.execute("BEGIN IMMEDIATE")
            try:
                chunks = conn.execute(
                    f"DELETE FROM chunks WHERE session_id IN ({_EXPIRED})", (cutoff,)
                ).rowcount
                errors = conn.execute(
                    f"DELETE FROM session_errors WHERE at < ?1 OR session_id IN ({_EXPIRED})",
                    (cutoff,),
                ).rowcount
                sessions = conn.execute(
                    "DELETE FROM sessions WHERE started_at < ?", (cutoff,)
                ).rowcount
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        return ExpiredCounts(sessions=sessions, chunks=chunks, errors=errors)

    def check(self) -> None:
        latest = migrations()[-1].version
        with self._reader("check") as conn:
            (version,) = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        if version != latest:
            raise StorageError(f"schema version is {version}, expected {latest}")


def _migrate(conn: sqlite3.Connection, todo: Sequence[Migration]) -> None:
    """Apply the migrations not yet recorded in ``schema_migrations``, all in
    one IMMEDIATE transaction, so two processes opening the same file at once
    cannot both apply one. A database newer than this code is refused."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        applied = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
        for migration in pending(todo, applied):
            for statement in _statements(migration.script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _chunk_rows(chunks: Sequence[Chunk], stored_at: float) -> Iterator[tuple[Any, ...]]:
    """The chunks' rows in ``_INSERT_CHUNK``'s order; a flush's straight
    from Rust (its ``rows()``: one tuple per chunk, no ``Chunk`` objects)."""
    rows = chunks.flush.rows() if isinstance(chunks, ChunkBatch) else (c.row() for c in chunks)
    for *head, payload, received_at in rows:
        yield (*head, stored_at, payload, received_at)
