"""What only the PostgreSQL backend has: versioned migrations shared by
instances starting at once, daily partitions made ahead and on demand, the
COPY slow path for chunks already stored, retention by dropping partitions,
and errors (refused connections, a real outage) translated into retryable
StorageErrors. The contract it shares with the others is in
test_backends.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest
import trio

import services
from replaywire.storage import PostgresStorage, StorageError, open_storage
from replaywire.storage.postgres_schema import (
    ADVISORY_LOCK_KEY,
    PARTITIONS_AHEAD,
    migrations,
    partition_name,
    utc_day,
)

from .factories import T0, make_chunk, make_error, make_session

T = TypeVar("T")
DAY = 86_400.0


@pytest.fixture
def storage(postgres_storage: PostgresStorage) -> PostgresStorage:
    return postgres_storage


@pytest.fixture
def sql(postgres_url: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """``sql(query, *params)``: the rows of a query on the test database,
    through a connection of its own."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:

        def run(query: str, *params: Any) -> list[tuple[Any, ...]]:
            cursor = conn.execute(query.encode(), params or None)
            return cursor.fetchall() if cursor.description else []

        yield run


def partitions(url: str) -> set[str]:
    """The names of the partitions attached to ``chunks``."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'chunks'::regclass"
        ).fetchall()
    return {name for (name,) in rows}


def in_threads(count: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``fn(i)`` in ``count`` threads released together; the results
    (or exceptions) in order."""
    barrier = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("did not run")] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# --- migrations ----------------------------------------------------------------


def test_migrations_apply_once_and_reopen_is_idempotent(fresh_postgres_url: str) -> None:
    for _ in range(3):
        storage = PostgresStorage(fresh_postgres_url)
        storage.open()
        storage.open()  # open twice on one object is a no-op too
        storage.check()
        storage.close()
    with psycopg.connect(fresh_postgres_url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
    assert rows == [(m.version, m.name) for m in migrations()]
    assert rows == [
        (1, "init"),
        (2, "clock_skew"),
        (3, "keyframe_index"),
        (4, "snapshot_missing"),
        (5, "session_filters"),
    ]


def test_instances_starting_at_once_apply_the_schema_once(fresh_postgres_url: str) -> None:
    def start(_: int) -> None:
        storage = PostgresStorage(fresh_postgres_url, pool_size=1)
        storage.open()
        storage.check()
        storage.close()

    results = in_threads(6, start)

    assert results == [None] * 6
    with psycopg.connect(fresh_postgres_url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [(m.version,) for m in migrations()]
    today = utc_day(time.time())
    assert partitions(fresh_postgres_url) == {
        partition_name(today + timedelta(days=n)) for n in range(PARTITIONS_AHEAD + 1)
    }


def test_a_newer_schema_is_refused(fresh_postgres_url: str) -> None:
    storage = PostgresStorage(fresh_postgres_url)
    storage.open()
    storage.close()
    with psycopg.connect(fresh_postgres_url) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
    with pytest.raises(StorageError, match="newer") as caught:
        storage.open()
    assert not caught.value.retryable
    with pytest.raises(StorageError, match="not open"):
        storage.check()


# --- partitions ----------------------------------------------------------------


def test_open_and_maintain_create_partitions_ahead(
    storage: PostgresStorage, postgres_url: str
) -> None:
    today = utc_day(time.time())
    ahead = {partition_name(today + timedelta(days=n)) for n in range(PARTITIONS_AHEAD + 1)}
    assert ahead <= partitions(postgres_url)

    later = time.time() + 400 * DAY
    storage.maintain(later)
    storage.maintain(later)  # nothing left to do
    first = utc_day(later)
    assert {
        partition_name(first + timedelta(days=n)) for n in range(PARTITIONS_AHEAD + 1)
    } <= partitions(postgres_url)


def test_instances_maintaining_at_once_do_not_fail(postgres_url: str) -> None:
    storages = [PostgresStorage(postgres_url, pool_size=1) for _ in range(4)]
    for storage in storages:
        storage.open()
    try:
        later = time.time() + 800 * DAY
        assert in_threads(4, lambda i: storages[i].maintain(later)) == [None] * 4
    finally:
        for storage in storages:
            storage.close()
    assert partition_name(utc_day(later)) in partitions(postgres_url)


def test_a_chunk_goes_to_its_session_start_day_made_on_demand(
    storage: PostgresStorage, postgres_url: str, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    # A session from long ago: its day has no partition until the write.
    started = datetime(2019, 3, 4, 23, 59, 59, 999999, tzinfo=UTC).timestamp()
    name = partition_name(utc_day(started))
    assert name == "chunks_p20190304"
    assert name not in partitions(postgres_url)
    storage.write([make_session("s1", started)], [make_chunk("s1", 0)], [])
    # The session from the sessions table: a chunk written later, alone.
    storage.write([], [make_chunk("s1", 1)], [])

    assert name in partitions(postgres_url)
    rows = sql("SELECT tableoid::regclass::text, seq FROM chunks ORDER BY seq")
    assert rows == [(name, 0), (name, 1)]
    assert [c.seq for c in storage.read_chunks("s1", 0, 100)] == [0, 1]


def test_a_partition_dropped_behind_our_back_is_made_again_on_retry(
    storage: PostgresStorage, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    started = T0 - 700 * DAY
    storage.write([make_session("s1", started)], [make_chunk("s1", 0)], [])
    sql(f"DROP TABLE {partition_name(utc_day(started))}")  # another instance's retention

    with pytest.raises(StorageError, match="no partition") as caught:
        storage.write([make_session("s1", started)], [make_chunk("s1", 1)], [])
    assert caught.value.retryable
    storage.write([make_session("s1", started)], [make_chunk("s1", 1)], [])
    assert [c.seq for c in storage.read_chunks("s1", 0, 100)] == [1]


# --- writes ----------------------------------------------------------------------


def test_chunks_already_stored_are_skipped_and_new_ones_kept(
    storage: PostgresStorage, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    first = [make_chunk(seq=s, payload=f"[{s}]".encode()) for s in range(3)]
    storage.write([make_session()], first, [])
    storage.write([make_session()], first, [])  # a retried flush: all stored
    again = [make_chunk(seq=s, payload=b'["again"]') for s in range(5)]
    storage.write([make_session()], again, [make_error()])  # three stored, two new

    stored = sql("SELECT seq, payload FROM chunks ORDER BY seq")
    assert stored == [(0, b"[0]"), (1, b"[1]"), (2, b"[2]"), (3, b'["again"]'), (4, b'["again"]')]
    assert storage.read_chunks("s1", 0, 1000) == first + again[3:]
    assert storage.session_errors("s1") == [make_error()]  # the rest of the write went in


def test_a_flush_right_after_another_survives_a_cut_connection(
    storage: PostgresStorage, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    # Back-to-back flushes do not check the connection first: one that was
    # cut meanwhile fails the first try, and the flush goes through a new one.
    storage.write([make_session()], [make_chunk(seq=0)], [])
    writer = storage._writer
    assert writer is not None
    assert sql("SELECT pg_terminate_backend(%s)", writer.info.backend_pid) == [(True,)]
    storage.write([make_session()], [make_chunk(seq=1)], [make_error()])
    assert storage._writer is not writer
    assert [c.seq for c in storage.read_chunks("s1", 0, 100)] == [0, 1]
    assert storage.session_errors("s1") == [make_error()]


def test_a_large_flush_round_trips(storage: PostgresStorage) -> None:
    sessions = [make_session(f"s{i}", T0 + i) for i in range(50)]
    chunks = [
        make_chunk(f"s{i % 50}", i // 50, payload=bytes([i % 251]) * 12_288) for i in range(500)
    ]
    storage.write(sessions, chunks, [])
    for i in (0, 17, 49):
        got = storage.read_chunks(f"s{i}", 0, 1_000_000)
        assert got == [c for c in chunks if c.session_id == f"s{i}"]


def test_a_chunk_that_cannot_be_stored_fails_the_whole_write(storage: PostgresStorage) -> None:
    bad = make_chunk("bad\x00id", 0)  # PostgreSQL text cannot hold NUL
    with pytest.raises(StorageError, match="NUL") as caught:
        storage.write([make_session("s1"), make_session("bad\x00id")], [make_chunk(), bad], [])
    assert not caught.value.retryable
    assert storage.get_session("s1") is None


def test_timestamps_keep_their_microseconds(storage: PostgresStorage) -> None:
    # Floats nearest to whole microseconds come back bit for bit.
    record = make_session(
        started_at=1_714_564_800.123456, ended_at=1_714_564_800.123457, last_event_at=0.0
    )
    storage.write([record], [], [make_error(at=-1.5)])
    assert storage.get_session("s1") == record
    assert storage.session_errors("s1")[0].at == -1.5


# --- retention -------------------------------------------------------------------


def test_expire_drops_old_partitions_and_keeps_recent_ones(
    storage: PostgresStorage, postgres_url: str, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    now = time.time()
    old_day, today = utc_day(now - 40 * DAY), utc_day(now)
    old = [make_session(f"old{i}", now - 40 * DAY + i) for i in range(2)]
    new = make_session("new", now)
    storage.write(
        [*old, new],
        [make_chunk(r.session_id, s) for r in (*old, new) for s in range(2)],
        [make_error("old0", at=now), make_error("new", at=now)],
    )
    assert partition_name(old_day) in partitions(postgres_url)

    expired = storage.expire(now - 30 * DAY)

    assert (expired.sessions, expired.chunks, expired.errors) == (2, 4, 1)
    assert expired.partitions >= 1  # also any old day another test left
    names = partitions(postgres_url)
    assert partition_name(old_day) not in names
    assert partition_name(today) in names
    assert sql("SELECT count(*) FROM pg_class WHERE relname = %s", partition_name(old_day)) == [
        (0,)
    ]
    assert [r.session_id for r in storage.list_sessions()] == ["new"]
    assert len(storage.read_chunks("new", 0, 100)) == 2


def test_expire_gives_way_to_a_held_advisory_lock_with_a_retryable_error(
    storage: PostgresStorage, postgres_url: str
) -> None:
    # Another instance's migration or partition work holds the lock: expire
    # gives up after the lock timeout with a retryable error.
    storage.write([make_session("old", T0 - 40 * DAY)], [make_chunk("old", 0)], [])
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        with pytest.raises(StorageError, match="lock") as caught:
            storage.expire(T0)
        assert caught.value.retryable
    assert storage.expire(T0).sessions == 1


# --- errors and outages ----------------------------------------------------------


def test_a_refused_connection_is_retryable_and_keeps_the_password_secret() -> None:
    url = f"postgresql://replaywire:s3cr3t-pw@127.0.0.1:{services.free_port()}/x"
    storage = PostgresStorage(url)
    with pytest.raises(StorageError) as caught:
        storage.open()
    assert caught.value.retryable
    assert "s3cr3t-pw" not in str(caught.value) and "refused" in str(caught.value)
    with pytest.raises(StorageError, match="not open"):
        storage.write([make_session()], [], [])


def test_a_malformed_url_is_not_retryable_and_keeps_the_password_secret() -> None:
    # libpq quotes the bad token, here the password itself.
    storage = PostgresStorage("postgresql://u:pw-0f-mine%zz@localhost/db")
    with pytest.raises(StorageError, match="bad PostgreSQL URL") as caught:
        storage.open()
    assert not caught.value.retryable
    assert "pw-0f-mine" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert "pw-0f-mine" not in repr(storage)


def test_open_storage_reads_postgres_urls() -> None:
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "POSTGRESQL://u@h/db"):
        storage = open_storage(url, pool_size=2)
        assert isinstance(storage, PostgresStorage)
        assert storage.name == "postgres"
    with pytest.raises(StorageError, match="pool size"):
        open_storage("postgresql://u@h/db", pool_size=0)


def retry_until(deadline: float, call: Callable[[], T]) -> T:
    """``call()`` again after each retryable StorageError, as the writer
    would, until it succeeds or ``deadline`` (monotonic) passes."""
    while True:
        try:
            return call()
        except StorageError as exc:
            assert exc.retryable, exc
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_writes_and_reads_recover_after_an_outage(
    throwaway_postgres: services.ThrowawayPostgres,
) -> None:
    name = f"outage_{time.monotonic_ns()}"
    url = services.create_database(throwaway_postgres.url, name)
    storage = PostgresStorage(url, timeout=2.0)
    storage.open()
    try:
        storage.write([make_session()], [make_chunk(seq=0)], [])

        throwaway_postgres.stop()
        # Refused connections fail at once: the writer can spool without delay.
        started = time.monotonic()
        with pytest.raises(StorageError, match="refused") as caught:
            storage.write([make_session()], [make_chunk(seq=1)], [])
        assert caught.value.retryable
        assert time.monotonic() - started < 1
        # Reads give up sooner than `timeout` once the writer saw the outage.
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            storage.check()
        assert caught.value.retryable
        assert time.monotonic() - started < 1.5

        throwaway_postgres.start()
        # The same object, as the writer would retry it: its own connection
        # comes back at once, the pool's after its reconnection backoff.
        deadline = time.monotonic() + 20
        retry_until(deadline, lambda: storage.write([make_session()], [make_chunk(seq=1)], []))
        got = retry_until(deadline, lambda: storage.read_chunks("s1", 0, 100))
        assert [c.seq for c in got] == [0, 1]
    finally:
        storage.close()
        if throwaway_postgres.running:
            services.drop_database(throwaway_postgres.url, name)


# --- the server's cleanup task --------------------------------------------------


async def test_the_server_cleanup_task_drops_expired_partitions(
    fresh_postgres_url: str, start_server: Callable[..., Awaitable[Any]]
) -> None:
    """Retention runs by itself in a server: at start, then every
    RETENTION_INTERVAL seconds, dropping partitions older than RETENTION_DAYS."""
    now = time.time()
    old, recent = now - 40 * 86400, now - 86400
    storage = PostgresStorage(fresh_postgres_url)
    storage.open()
    try:
        storage.write(
            [make_session("old", started_at=old), make_session("recent", started_at=recent)],
            [make_chunk("old", 0), make_chunk("recent", 0)],
            [],
        )
    finally:
        storage.close()
    old_partition = partition_name(utc_day(old))
    assert old_partition in partitions(fresh_postgres_url)

    server = await start_server(
        database_url=fresh_postgres_url, retention_days=30, retention_interval=0.2
    )
    with trio.fail_after(20):
        while old_partition in partitions(fresh_postgres_url):  # noqa: ASYNC110
            await trio.sleep(0.1)
    assert await server.hub.get_record("old") is None
    assert await server.hub.get_record("recent") is not None
