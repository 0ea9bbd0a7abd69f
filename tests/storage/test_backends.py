"""The storage contract, checked against every backend: SQLite on a real
file under tmp_path, memory, and PostgreSQL on a real server (a database of
this test run, emptied before each test; see tests/services.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from replaywire.storage import (
    Chunk,
    ExpiredCounts,
    MemoryStorage,
    ResumeState,
    SessionRecord,
    SqliteStorage,
    Storage,
    StorageError,
)

from .factories import T0, make_chunk, make_error, make_session


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    backend: Storage
    if request.param == "postgres":  # opened, emptied and closed by its fixture
        yield request.getfixturevalue("postgres_storage")
        return
    if request.param == "sqlite":
        backend = SqliteStorage(tmp_path / "nested" / "replaywire.db")
    else:
        backend = MemoryStorage()
    backend.open()
    yield backend
    backend.close()


def full_record(session_id: str = "s1") -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        started_at=T0 + 0.125,
        user_id="u-7",
        url="https://shop.example/checkout?step=2",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
        referrer="https://search.example/?q=shoes",
        time_zone="Europe/Berlin",
        viewport_width=1440,
        viewport_height=900,
        device_pixel_ratio=1.5,
        client_start_time=1_714_564_799_871.0,
        ended_at=T0 + 60.5,
        last_event_at=T0 + 59.25,
        event_count=1234,
        byte_count=283_820,
        status="ended",
        clock_skew_ms=600_012.5,
        snapshot_missing_reason="too_large",
        snapshot_missing_bytes=71_600_000,
        snapshot_missing_limit_bytes=67_108_864,
        snapshot_missing_at=T0 + 2.5,
    )


# --- sessions ----------------------------------------------------------------


def test_session_round_trip_keeps_every_field(storage: Storage) -> None:
    record = full_record()
    storage.write([record], [], [])
    assert storage.get_session("s1") == record


def test_snapshot_missing_is_stored_listed_and_replaced(storage: Storage) -> None:
    record = make_session()
    storage.write([record], [], [])
    assert storage.get_session("s1") == record
    assert record.to_json()["snapshotMissing"] is None

    record.mark_snapshot_missing("too_large", 71_600_000, None, T0 + 3.5)
    storage.write([record], [], [])
    (listed,) = storage.list_sessions()
    assert listed == record
    assert listed.to_json()["snapshotMissing"] == {
        "reason": "too_large",
        "bytes": 71_600_000,
        "limitBytes": None,
        "at": "2024-05-01T12:00:03.500Z",
    }

    record.mark_snapshot_missing("too_large", 2**63 - 1, 67_108_864, T0 + 4)  # latest wins
    storage.write([record], [], [])
    stored = storage.get_session("s1")
    assert stored is not None
    assert stored.to_json()["snapshotMissing"] == {
        "reason": "too_large",
        "bytes": 2**63 - 1,
        "limitBytes": 67_108_864,
        "at": "2024-05-01T12:00:04.000Z",
    }


def test_get_session_returns_a_copy(storage: Storage) -> None:
    storage.write([make_session()], [], [])
    got = storage.get_session("s1")
    assert got is not None
    got.event_count = 99
    assert storage.get_session("s1") == make_session()


def test_session_upsert_replaces_every_field(storage: Storage) -> None:
    storage.write([full_record()], [], [])
    plain = make_session(started_at=T0 + 1)  # every optional field back to None / 0
    storage.write([plain], [], [])
    assert storage.get_session("s1") == plain


def test_unknown_session_reads_as_empty(storage: Storage) -> None:
    assert storage.get_session("nope") is None
    assert storage.resume_state("nope") is None
    assert storage.read_chunks("nope", 0, 100) == []
    assert storage.session_errors("nope") == []


def test_list_sessions_newest_first_with_status_and_limit(storage: Storage) -> None:
    records = [
        make_session("a", T0 + 1),
        make_session("b", T0 + 3, status="ended"),
        make_session("c", T0 + 2),
        make_session("d", T0 + 4),
    ]
    storage.write(records, [], [])
    assert [r.session_id for r in storage.list_sessions()] == ["d", "b", "c", "a"]
    assert [r.session_id for r in storage.list_sessions(status="active")] == ["d", "c", "a"]
    assert [r.session_id for r in storage.list_sessions(status="ended")] == ["b"]
    assert [r.session_id for r in storage.list_sessions(limit=2)] == ["d", "b"]
    assert storage.list_sessions(limit=0) == []


def test_list_sessions_by_id_prefix(storage: Storage) -> None:
    """A tenant's sessions (``tenant:`` keys); a name holding ``_`` or ``%``
    is matched literally, not as a LIKE pattern."""
    names = ["a_b:1", "a_b:2", "axb:1", "a_c:1", "a_b;", "a_b", "a%b:1"]
    storage.write([make_session(n, T0 + i) for i, n in enumerate(names)], [], [])
    assert [r.session_id for r in storage.list_sessions(prefix="a_b:")] == ["a_b:2", "a_b:1"]
    assert [r.session_id for r in storage.list_sessions(prefix="a%b:")] == ["a%b:1"]
    assert storage.list_sessions(prefix="zz:") == []
    assert len(storage.list_sessions(prefix="")) == len(names)


# --- chunks ------------------------------------------------------------------


def test_chunk_payload_round_trip_is_byte_exact(storage: Storage) -> None:
    # Stored as a BLOB: NUL and non-UTF-8 bytes come back untouched.
    odd = make_chunk(seq=1, first_index=10, payload=bytes(range(256)) * 3)
    rrweb = make_chunk(seq=0, first_index=0)
    storage.write([make_session()], [odd, rrweb], [])
    got = storage.read_chunks("s1", 0, 1000)
    assert got == [rrweb, odd]
    assert [type(c.payload) for c in got] == [bytes, bytes]
    assert got[1].payload == bytes(range(256)) * 3


def test_chunk_received_at_round_trips(storage: Storage) -> None:
    # Server times: PostgreSQL keeps microseconds, so these are exact there.
    stamped = make_chunk(seq=0, received_at=T0 + 0.250_001)
    unknown = make_chunk(seq=1)  # a chunk from before received_at was kept
    assert unknown.received_at is None
    storage.write([make_session()], [stamped, unknown], [])
    assert storage.read_chunks("s1", 0, 1000) == [stamped, unknown]


def test_duplicate_seq_is_ignored_and_the_first_stored_wins(storage: Storage) -> None:
    first = make_chunk(seq=0, payload=b"[1]")
    storage.write([], [first, make_chunk(seq=0, payload=b"[2]")], [])  # within one write
    storage.write([], [make_chunk(seq=0, payload=b"[3]")], [])  # a retried write
    assert storage.read_chunks("s1", 0, 100) == [first]


def test_chunks_of_other_sessions_stay_apart(storage: Storage) -> None:
    mine, theirs = make_chunk("s1", 0), make_chunk("s2", 0)
    storage.write([], [mine, theirs], [])
    assert storage.read_chunks("s1", 0, 100) == [mine]
    assert storage.read_chunks("s2", 0, 100) == [theirs]


# Three chunks of ten events: [0, 10), [10, 20), [20, 30); written out of order.
@pytest.mark.parametrize(
    ("from_index", "max_events", "seqs"),
    [
        (0, 1000, [0, 1, 2]),
        (0, 10, [0]),  # exactly one chunk's worth
        (0, 11, [0, 1]),  # one event more needs the next chunk
        (15, 5, [1]),  # from inside a chunk: 5 events left in it
        (15, 6, [1, 2]),
        (10, 10, [1]),  # a chunk's first index is inside it
        (9, 1, [0]),  # its last index too
        (29, 1000, [2]),
        (30, 1000, []),  # past the end
        (0, 0, []),
        (0, -1, []),
    ],
)
def test_read_chunks_windows(
    storage: Storage, from_index: int, max_events: int, seqs: list[int]
) -> None:
    chunks = [make_chunk(seq=s) for s in (2, 0, 1)]
    storage.write([], chunks, [])
    got = storage.read_chunks("s1", from_index, max_events)
    assert [c.seq for c in got] == seqs


def test_read_chunks_orders_by_first_index_and_counts_only_stored_events(storage: Storage) -> None:
    # seq order differs from index order, and indexes 5..9 are missing.
    a = make_chunk(seq=3, first_index=0, count=5)
    b = make_chunk(seq=1, first_index=10, count=5)
    c = make_chunk(seq=2, first_index=15, count=5)
    storage.write([], [c, a, b], [])
    assert storage.read_chunks("s1", 0, 100) == [a, b, c]
    assert storage.read_chunks("s1", 0, 10) == [a, b]  # the gap counts for nothing
    assert storage.read_chunks("s1", 7, 100) == [b, c]


# --- resume state ------------------------------------------------------------


@pytest.mark.parametrize(
    ("seqs", "expected"),
    [
        ([], ResumeState(0, 0, ())),
        ([0, 1, 2], ResumeState(30, 3, ())),
        ([0, 1, 2, 5, 7], ResumeState(80, 3, (5, 7))),
        ([1, 2], ResumeState(30, 0, (1, 2))),
        ([0, 2, 3], ResumeState(40, 1, (2, 3))),
    ],
)
def test_resume_state_with_gaps_in_seqs(
    storage: Storage, seqs: list[int], expected: ResumeState
) -> None:
    storage.write([make_session()], [make_chunk(seq=s) for s in reversed(seqs)], [])
    assert storage.resume_state("s1") == expected


def test_resume_state_needs_a_session_row(storage: Storage) -> None:
    storage.write([], [make_chunk(seq=0)], [])
    assert storage.resume_state("s1") is None
    storage.write([make_session()], [], [])
    assert storage.resume_state("s1") == ResumeState(10, 1, ())


# --- errors ------------------------------------------------------------------


def test_errors_round_trip_newest_first_with_limit(storage: Storage) -> None:
    errors = [make_error(at=T0 + i, seq=i if i % 2 else None) for i in range(5)]
    storage.write([], [], [*errors, make_error("s2")])
    assert storage.session_errors("s1") == errors[::-1]
    assert storage.session_errors("s1", limit=2) == [errors[4], errors[3]]
    assert storage.session_errors("s1", limit=0) == []


def test_errors_at_the_same_time_come_back_latest_written_first(storage: Storage) -> None:
    first, second = make_error(seq=1), make_error(seq=2)
    storage.write([], [], [first])
    storage.write([], [], [second])
    assert storage.session_errors("s1") == [second, first]


# --- transactions and lifecycle ----------------------------------------------


def test_write_is_all_or_nothing(storage: Storage) -> None:
    bad = make_session("s2", status="paused")
    with pytest.raises(StorageError, match="paused") as caught:
        storage.write([make_session("s1"), bad], [make_chunk("s1", 0)], [make_error("s1")])
    assert not caught.value.retryable
    assert storage.get_session("s1") is None
    assert storage.read_chunks("s1", 0, 100) == []
    assert storage.session_errors("s1") == []


def test_check_passes_while_open_and_everything_fails_after_close(storage: Storage) -> None:
    storage.check()
    storage.close()
    storage.close()  # idempotent
    calls: list[Callable[[], object]] = [
        storage.check,
        lambda: storage.write([], [make_chunk()], []),
        lambda: storage.get_session("s1"),
        lambda: storage.list_sessions(),
        lambda: storage.read_chunks("s1", 0, 10),
        lambda: storage.resume_state("s1"),
        lambda: storage.session_errors("s1"),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="not open"):
            call()
    storage.open()  # so the fixture's close has something to close


# --- retention -----------------------------------------------------------------

DAY = 86_400.0


def test_expire_removes_what_started_before_the_cutoff(storage: Storage) -> None:
    # Days apart, so that PostgreSQL drops a whole partition (the old
    # session's) and deletes rows in the partition that holds the cutoff
    # (just_before), keeping the rest of that partition (just_after).
    cutoff = T0 - 30 * DAY + 3600
    old = make_session("old", T0 - 40 * DAY, status="ended")
    old_live = make_session("old-live", T0 - 40 * DAY + 60)  # still active: expires too
    just_before = make_session("just-before", cutoff - 0.000001)
    just_after = make_session("just-after", cutoff)
    recent = make_session("recent", T0)
    sessions = [old, old_live, just_before, just_after, recent]
    chunks = [make_chunk(r.session_id, seq) for r in sessions for seq in range(3)]
    errors = [
        make_error("old", at=T0),  # after the cutoff, but its session goes
        make_error("just-after", at=cutoff + 1),
        make_error("recent", at=T0),
        make_error("never-stored", at=cutoff - 1),  # before the cutoff: goes
        make_error("never-stored", at=cutoff),
    ]
    storage.write(sessions, chunks, errors)

    expired = storage.expire(cutoff)

    assert dataclasses.replace(expired, partitions=0) == ExpiredCounts(
        sessions=3, chunks=9, errors=2
    )
    assert [r.session_id for r in storage.list_sessions()] == ["recent", "just-after"]
    for gone in ("old", "old-live", "just-before"):
        assert storage.get_session(gone) is None
        assert storage.read_chunks(gone, 0, 100) == []
        assert storage.resume_state(gone) is None
        assert storage.session_errors(gone) == []
    for kept in (just_after, recent):
        assert storage.get_session(kept.session_id) == kept
        assert [c.seq for c in storage.read_chunks(kept.session_id, 0, 100)] == [0, 1, 2]
    assert storage.session_errors("just-after") == [errors[1]]
    assert storage.session_errors("never-stored") == [errors[4]]


def test_expire_again_finds_nothing_and_writes_go_on(storage: Storage) -> None:
    storage.write([make_session("old", T0 - 40 * DAY)], [make_chunk("old", 0)], [])
    storage.expire(T0)
    assert dataclasses.replace(storage.expire(T0), partitions=0) == ExpiredCounts(0, 0, 0)
    # The same session coming back (a tracker still sending) is stored anew.
    storage.write([make_session("old", T0 - 40 * DAY)], [make_chunk("old", 1)], [])
    assert [c.seq for c in storage.read_chunks("old", 0, 100)] == [1]
    assert storage.resume_state("old") == ResumeState(20, 0, (1,))


def test_expire_on_a_closed_storage_fails(storage: Storage) -> None:
    storage.close()
    with pytest.raises(StorageError, match="not open"):
        storage.expire(T0)
    storage.open()


def test_chunk_end_index() -> None:
    chunk = Chunk("s1", 0, 40, 10, None, None, "none", b"[]")
    assert chunk.end_index == 50
