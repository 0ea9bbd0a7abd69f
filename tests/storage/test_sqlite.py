"""What only the SQLite backend has: a file that outlives the process,
migrations, WAL readers, URLs; and a property check that it answers exactly
like the memory backend."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaywire.storage import (
    MemoryStorage,
    SqliteStorage,
    Storage,
    StorageError,
    open_storage,
)
from replaywire.storage.sqlite import PAGE_SIZE, migrations

from .factories import make_chunk, make_error, make_session


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "replaywire.db"


@pytest.fixture
def storage(db: Path) -> Iterator[SqliteStorage]:
    backend = SqliteStorage(db)
    backend.open()
    yield backend
    backend.close()


def test_data_survives_close_and_reopen(db: Path) -> None:
    first = SqliteStorage(db)
    first.open()
    record, chunks = make_session(url="https://a.example/"), [make_chunk(seq=s) for s in range(3)]
    first.write([record], chunks, [make_error(seq=7)])
    first.close()

    second = SqliteStorage(db)  # a new object on the same file: as after a restart
    second.open()
    try:
        assert second.get_session("s1") == record
        assert second.read_chunks("s1", 0, 1000) == chunks
        assert second.session_errors("s1") == [make_error(seq=7)]
        assert second.resume_state("s1") is not None
    finally:
        second.close()


def test_migrations_apply_once_and_reopen_is_idempotent(db: Path) -> None:
    for _ in range(3):
        backend = SqliteStorage(db)
        backend.open()
        backend.open()  # open twice on one object is a no-op too
        backend.check()
        backend.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert rows == [(m.version, m.name) for m in migrations()]
    assert rows == [
        (1, "init"),
        (2, "clock_skew"),
        (3, "keyframe_index"),
        (4, "snapshot_missing"),
        (5, "session_filters"),
    ]
    assert {"sessions", "chunks", "session_errors", "schema_migrations"} <= tables


def test_a_version_1_database_is_migrated_and_keeps_its_data(db: Path) -> None:
    from replaywire.storage.sqlite import _migrate

    with sqlite3.connect(db, isolation_level=None) as conn:
        _migrate(conn, migrations()[:1])
        conn.execute("INSERT INTO sessions (session_id, started_at) VALUES ('old', 1714564800.0)")
        conn.execute(
            "INSERT INTO chunks (session_id, seq, first_index, event_count, codec, stored_at,"
            " payload) VALUES ('old', 0, 0, 1, 'none', 1714564801.0, X'5b315d')"
        )
    conn.close()
    backend = SqliteStorage(db)
    backend.open()
    try:
        backend.check()
        record = backend.get_session("old")
        assert record is not None and record.clock_skew_ms is None
        [chunk] = backend.read_chunks("old", 0, 10)
        assert (chunk.payload, chunk.received_at) == (b"[1]", None)
    finally:
        backend.close()


def test_a_newer_schema_is_refused(db: Path) -> None:
    SqliteStorage(db).open()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
    conn.close()
    with pytest.raises(StorageError, match="newer") as caught:
        SqliteStorage(db).open()
    assert not caught.value.retryable


def test_a_failed_write_rolls_back_and_the_next_one_works(storage: SqliteStorage) -> None:
    # The database itself refuses the third statement (payload is NOT NULL),
    # after the session upsert already ran inside the transaction.
    broken = dataclasses.replace(make_chunk(seq=1), payload=None)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="NOT NULL") as caught:
        storage.write([make_session()], [make_chunk(seq=0), broken], [])
    assert not caught.value.retryable
    assert storage.get_session("s1") is None
    assert storage.read_chunks("s1", 0, 100) == []
    storage.write([make_session()], [make_chunk(seq=0)], [])
    assert storage.resume_state("s1") is not None


def test_file_is_in_wal_mode_with_payload_as_blob(storage: SqliteStorage, db: Path) -> None:
    storage.write([], [make_chunk()], [])
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT typeof(payload) FROM chunks").fetchone() == ("blob",)
    finally:
        conn.close()


def test_a_new_file_gets_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """Stored chunks are a few KB each: a new file is made with 16 KiB
    pages; a file made before (SQLite's 4 KiB) keeps them and its data."""
    new = SqliteStorage(tmp_path / "new.db")
    new.open()
    new.close()
    old_path = tmp_path / "old.db"
    conn = sqlite3.connect(old_path)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    old = SqliteStorage(old_path)
    old.open()
    old.write([make_session()], [make_chunk(seq=s) for s in range(3)], [])
    old.close()
    old.open()
    try:
        assert [c.seq for c in old.read_chunks("s1", 0, 1000)] == [0, 1, 2]
    finally:
        old.close()
    for path, page_size in ((tmp_path / "new.db", PAGE_SIZE), (old_path, 4096)):
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA page_size").fetchone() == (page_size,)
        finally:
            conn.close()
    assert PAGE_SIZE == 16384


def test_checkpoints_have_a_thread_of_their_own_that_close_stops(db: Path) -> None:
    def checkpointers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == f"checkpoints of {db}"]

    storage = SqliteStorage(db)
    storage.open()
    try:
        storage.write([make_session()], [make_chunk(seq=0)], [])
        assert len(checkpointers()) == 1
    finally:
        storage.close()
    assert checkpointers() == []
    assert not db.with_name(db.name + "-wal").exists()  # the last close copied the WAL back
    storage.open()  # and a reopened storage has one again
    try:
        assert len(checkpointers()) == 1
        assert storage.resume_state("s1") is not None
    finally:
        storage.close()


def test_reads_are_not_blocked_by_an_open_write_transaction(
    storage: SqliteStorage, db: Path
) -> None:
    storage.write([make_session(event_count=1)], [], [])
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock, uncommitted
        other.execute("UPDATE sessions SET event_count = 2")
        record = storage.get_session("s1")  # would wait 5 s for the lock without WAL
        assert record is not None and record.event_count == 1
        with pytest.raises(StorageError) as caught:
            # A second writer meets the lock; with a short timeout to keep the test quick.
            storage._writer.execute("PRAGMA busy_timeout = 10")  # type: ignore[union-attr]
            storage.write([make_session(event_count=3)], [], [])
        assert caught.value.retryable
        other.execute("COMMIT")
    finally:
        other.close()
    record = storage.get_session("s1")
    assert record is not None and record.event_count == 2


def test_concurrent_reader_threads_while_writing(storage: SqliteStorage) -> None:
    storage.write([make_session()], [], [])
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                chunks = storage.read_chunks("s1", 0, 10_000)
                # Writes are whole transactions: never a partial batch of two.
                assert len(chunks) % 2 == 0
                assert [c.seq for c in chunks] == list(range(len(chunks)))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for seq in range(0, 200, 2):
        storage.write([], [make_chunk(seq=seq), make_chunk(seq=seq + 1)], [])
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert len(storage.read_chunks("s1", 0, 10_000)) == 200


# --- URLs --------------------------------------------------------------------


def test_open_storage_relative_sqlite_path_creates_parent_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = open_storage("sqlite:///./data/deep/replaywire.db")
    assert isinstance(backend, SqliteStorage)
    assert backend.path == Path("data/deep/replaywire.db")
    backend.open()
    backend.close()
    assert (tmp_path / "data" / "deep" / "replaywire.db").is_file()


def test_open_storage_absolute_sqlite_path(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "x.db"
    backend = open_storage(f"sqlite:///{target}")  # target starts with "/": four slashes
    assert isinstance(backend, SqliteStorage) and backend.path == target
    assert backend.name == "sqlite"


def test_open_storage_memory() -> None:
    backend = open_storage("memory://")
    assert isinstance(backend, MemoryStorage) and backend.name == "memory"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://admin:hunter2@db.internal/replay", "unsupported database URL scheme"),
        ("data/replaywire.db", "no scheme"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///", "three slashes"),
        ("sqlite:///:memory:", "use memory://"),
        ("memory://somewhere", "takes no path"),
    ],
)
def test_open_storage_rejects_other_urls_without_echoing_them(url: str, match: str) -> None:
    with pytest.raises(StorageError, match=match) as caught:
        open_storage(url)
    assert "hunter2" not in str(caught.value)
    assert not caught.value.retryable


def test_open_fails_cleanly_when_the_folder_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create folder"):
        SqliteStorage(tmp_path / "file" / "x.db").open()


# --- SQLite answers exactly like memory ---------------------------------------

_session_ids = itertools.count()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Storage, Storage]]:
    sqlite_backend = SqliteStorage(tmp_path_factory.mktemp("prop") / "prop.db")
    memory_backend = MemoryStorage()
    sqlite_backend.open()
    memory_backend.open()
    yield sqlite_backend, memory_backend
    sqlite_backend.close()
    memory_backend.close()


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 12), min_size=0, max_size=12),
    gaps=st.lists(st.integers(0, 3), min_size=12, max_size=12),
    order=st.randoms(use_true_random=False),
    drop=st.sets(st.integers(0, 11)),
    queries=st.lists(st.tuples(st.integers(-2, 80), st.integers(-1, 40)), min_size=1, max_size=8),
)
def test_sqlite_and_memory_agree(
    both: tuple[Storage, Storage],
    counts: list[int],
    gaps: list[int],
    order: object,
    drop: set[int],
    queries: list[tuple[int, int]],
) -> None:
    sid = f"p{next(_session_ids)}"
    chunks, index = [], 0
    for seq, count in enumerate(counts):
        index += gaps[seq]
        if seq not in drop:  # seqs with holes, indexes with gaps
            chunks.append(make_chunk(sid, seq, index, count, payload=b"[%d]" % seq))
        index += count
    order.shuffle(chunks)  # type: ignore[attr-defined]
    for backend in both:
        backend.write([make_session(sid)], chunks[: len(chunks) // 2], [])
        backend.write([], chunks[len(chunks) // 2 :], [])
    sqlite_backend, memory_backend = both
    assert sqlite_backend.resume_state(sid) == memory_backend.resume_state(sid)
    for from_index, max_events in queries:
        expected = reference_window(chunks, from_index, max_events)
        assert sqlite_backend.read_chunks(sid, from_index, max_events) == expected
        assert memory_backend.read_chunks(sid, from_index, max_events) == expected


def reference_window(chunks: list, from_index: int, max_events: int) -> list:  # type: ignore[type-arg]
    """read_chunks, straight from its definition."""
    out, total = [], 0
    for chunk in sorted(chunks, key=lambda c: (c.first_index, c.seq)):
        if max_events <= 0 or total >= max_events:
            break
        if chunk.end_index > from_index:
            out.append(chunk)
            total += chunk.end_index - max(chunk.first_index, from_index)
    return out
