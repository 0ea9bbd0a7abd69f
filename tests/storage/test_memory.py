"""``memory://`` keeps chunk payloads within ``MEMORY_STORAGE_BYTES``: the
oldest writes are evicted first, while each session's resume state (end
index, seqs) stays exact."""

from __future__ import annotations

import gc
import sys

from replaywire.config import Config
from replaywire.storage import MemoryStorage, open_storage

from .factories import T0, make_chunk, make_session


def _opened(max_bytes: int | None) -> MemoryStorage:
    storage = MemoryStorage(max_bytes=max_bytes)
    storage.open()
    return storage


def test_the_oldest_writes_are_evicted_first_across_sessions() -> None:
    size = len(make_chunk().payload)
    storage = _opened(max_bytes=3 * size)
    sessions = [make_session("a"), make_session("b")]
    storage.write(sessions, [make_chunk("a", 0), make_chunk("b", 0)], [])
    storage.write(sessions, [make_chunk("a", 1), make_chunk("b", 1)], [])

    assert storage.evicted_chunks == 1
    assert storage.stored_bytes == 3 * size
    assert [c.seq for c in storage.read_chunks("a", 0, 100)] == [1]  # a's seq 0 went first
    assert [c.seq for c in storage.read_chunks("b", 0, 100)] == [0, 1]


def test_eviction_keeps_resume_state_and_deduplication() -> None:
    size = len(make_chunk().payload)
    storage = _opened(max_bytes=size)
    storage.write([make_session("a")], [make_chunk("a", seq) for seq in range(4)], [])

    assert [c.seq for c in storage.read_chunks("a", 0, 100)] == [3]
    state = storage.resume_state("a")
    assert state is not None
    assert (state.next_index, state.next_seq) == (40, 4)
    storage.write([], [make_chunk("a", 1)], [])  # an evicted seq is still a duplicate
    assert [c.seq for c in storage.read_chunks("a", 0, 100)] == [3]


def test_long_runs_of_eviction_keep_reads_exact() -> None:
    # Hundreds of a session's oldest chunks evicted one flush at a time
    # (past the point where the list is compacted), with out-of-order
    # writes and reads from every index between flushes.
    size = len(make_chunk().payload)
    storage = _opened(max_bytes=50 * size)
    written: list[int] = []
    order = [seq for block in range(0, 400, 4) for seq in (block + 1, block, block + 3, block + 2)]
    for at in range(0, len(order), 8):
        seqs = order[at : at + 8]
        storage.write([make_session("a")], [make_chunk("a", seq) for seq in seqs], [])
        written += seqs
        live = sorted(written[-50:])
        assert [c.seq for c in storage.read_chunks("a", 0, 10_000)] == live
        first = live[0] * 10
        for start in (0, first - 1, first, first + 5, first + 100, live[-1] * 10 + 9):
            got = [c.seq for c in storage.read_chunks("a", max(start, 0), 10_000)]
            assert got == [s for s in live if s * 10 + 9 >= start]
    assert storage.evicted_chunks == 350
    assert storage.stored_bytes == 50 * size
    assert storage.expire(T0 + 1).chunks == 50
    assert storage.stored_bytes == 0


def test_evicted_payloads_are_let_go_at_once() -> None:
    # The store holds its limit's worth of payloads, not up to twice that:
    # a chunk evicted from the front of its session's list is let go then,
    # not when the list's front is next cut off in bulk.
    payloads = [bytes([seq % 251]) * 1000 for seq in range(300)]
    storage = _opened(max_bytes=10 * 1000)
    for seq in range(300):
        storage.write([], [make_chunk("a", seq, payload=payloads[seq])], [])
    assert storage.evicted_chunks == 290
    unwritten = [bytes(1000)]
    alone = sys.getrefcount(unwritten[0])  # the list's reference and the call's
    held = [seq for seq in range(300) if sys.getrefcount(payloads[seq]) > alone]
    assert held == list(range(290, 300))


def test_expired_sessions_give_their_bytes_back() -> None:
    size = len(make_chunk().payload)
    storage = _opened(max_bytes=10 * size)
    storage.write([make_session("old", started_at=T0 - 100)], [make_chunk("old", 0)], [])
    storage.write([make_session("new")], [make_chunk("new", 0)], [])

    assert storage.expire(T0 - 50).chunks == 1
    assert storage.stored_bytes == size
    storage.write([], [make_chunk("new", s) for s in range(1, 10)], [])
    assert storage.evicted_chunks == 0


def test_unbounded_when_no_limit_is_given() -> None:
    storage = _opened(max_bytes=None)
    storage.write([make_session("a")], [make_chunk("a", s) for s in range(50)], [])
    assert storage.evicted_chunks == 0
    assert len(storage.read_chunks("a", 0, 10_000)) == 50


def test_memory_url_is_bounded_and_stores_uncompressed_by_default() -> None:
    config = Config.from_env({"DATABASE_URL": "memory://", "MEMORY_STORAGE_BYTES": "4096"})
    storage = open_storage(config.database_url, memory_bytes=config.memory_storage_bytes)
    assert isinstance(storage, MemoryStorage)
    assert storage.max_bytes == 4096
    assert config.stored_codec == "none"
    assert Config.from_env({}).stored_codec == "zstd"
    explicit = {"DATABASE_URL": "memory://", "STORAGE_CODEC": "zstd"}
    assert Config.from_env(explicit).stored_codec == "zstd"


def test_stored_chunks_are_out_of_the_collectors_sight() -> None:
    """A gigabyte of chunks must not make every full collection longer
    (that was the ack latency's worst stall): rows drop out of the cyclic
    collector's tracking after their first collection."""
    storage = _opened(max_bytes=None)
    storage.write([make_session("a")], [make_chunk("a", s) for s in range(20)], [])
    gc.collect()
    rows = storage._chunks["a"]
    assert rows and not any(gc.is_tracked(row) for row in rows)
    assert [c.seq for c in storage.read_chunks("a", 0, 1000)] == list(range(20))
