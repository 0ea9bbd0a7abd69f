"""StorageWriter on trio against real SQLite files: what makes it flush,
what flush() and close() promise, and where a chunk is visible meanwhile.

Time: ``autojump_clock`` nearly throughout, with a long ``batch_interval``. The
fault injector records the (virtual) time each write starts, so a test shows
*why* a flush happened: at the interval, or at once because of size, flush()
or close(). A broken trigger then fails an assertion (the write starts a
minute late) instead of hanging. Thread progress is observed through the
injector's events, never by sleeping.
"""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from replaywire import _core
from replaywire.sessions.history import raw_payload
from replaywire.storage import Chunk, MemoryStorage, StorageError, StorageWriter

from .factories import (
    BATCH_SIZE,
    FaultyStorage,
    make_chunk,
    make_error,
    make_session,
    make_writer,
    queue_chunk,
    stored,
)


async def test_flushes_when_batch_size_chunks_are_queued(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage, batch_size=3)
    chunks = [make_chunk(seq=s) for s in range(3)]
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, chunks[0], batch_size=3)
        await queue_chunk(writer, chunks[1], batch_size=3)
        await trio.sleep(1)
        assert storage.attempts == 0 and writer.stats.pending_chunks == 2

        t = trio.current_time()
        await queue_chunk(writer, chunks[2], batch_size=3)
        assert await storage.events.receive() == "started"
        assert storage.attempt_times == [t]  # at once, not at the interval
        assert await storage.events.receive() == "committed"
        await writer.flush()  # only waits for the flush already in flight
        assert storage.calls == [(0, 3, 0)]
        assert await stored(writer, storage) == chunks
        stats = writer.stats
        assert (stats.flushes, stats.chunks_written, stats.pending_chunks) == (1, 3, 0)
        assert stats.pending_bytes == 0 and stats.last_flush_seconds > 0
        await writer.close()


async def test_flushes_batch_interval_after_the_oldest_item(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage, batch_interval=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        t0 = trio.current_time()
        await queue_chunk(writer, make_chunk(seq=0))
        await trio.sleep(0.3)
        writer.put_session(make_session())  # a younger item does not restart the clock
        await trio.sleep(0.1)
        assert storage.attempts == 0

        assert await storage.events.receive() == "started"
        assert storage.attempt_times[0] - t0 == pytest.approx(0.5)
        assert await storage.events.receive() == "committed"
        await writer.flush()
        assert storage.calls == [(1, 1, 0)]
        await writer.close()


async def test_flush_returns_when_everything_before_it_is_durable(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.flush()  # nothing pending: returns at once
        chunks = [make_chunk(seq=s) for s in range(5)]
        for chunk in chunks:
            await queue_chunk(writer, chunk)
        writer.put_session(make_session(event_count=50))
        writer.put_error(make_error(seq=9))
        t = trio.current_time()
        await writer.flush()
        assert storage.attempt_times == [t]  # flush() started the write at once

        assert await stored(writer, storage) == chunks
        assert await writer.read(storage.get_session, "s1") == make_session(event_count=50)
        assert await writer.read(storage.session_errors, "s1") == [make_error(seq=9)]
        assert writer.pending_chunks("s1") == [] and writer.pending_session("s1") is None
        await writer.close()


async def test_flush_from_many_tasks_at_once(storage: FaultyStorage) -> None:
    writer = make_writer(storage)

    async def one(seq: int) -> None:
        await queue_chunk(writer, make_chunk(seq=seq))
        await writer.flush()
        assert make_chunk(seq=seq) in await stored(writer, storage)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        async with trio.open_nursery() as tasks:
            for seq in range(20):
                tasks.start_soon(one, seq)
        assert len(await stored(writer, storage)) == 20
        assert writer.stats.flushes <= 20
        await writer.close()


async def test_close_writes_everything_then_run_returns(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage)
    chunks = [make_chunk(sid, seq) for sid in ("a", "b") for seq in range(3)]
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for chunk in chunks:
            await queue_chunk(writer, chunk)
        writer.put_session(make_session("a", status="ended"))
        writer.put_error(make_error("b"))
        t = trio.current_time()
        async with trio.open_nursery() as closers:  # concurrent closes all wait
            closers.start_soon(writer.close)
            closers.start_soon(writer.close)
    # The nursery exited: run() returned.
    assert storage.attempt_times == [t]  # close() flushed at once
    await writer.close()  # idempotent, also after run() returned
    assert writer.stats.closed and writer.stats.pending_chunks == 0
    assert await stored(writer, storage, "a") == chunks[:3]
    assert await stored(writer, storage, "b") == chunks[3:]
    assert await writer.read(storage.get_session, "a") == make_session("a", status="ended")
    assert await writer.read(storage.session_errors, "b") == [make_error("b")]
    with pytest.raises(StorageError, match="writer closed"):
        await queue_chunk(writer, make_chunk("a", 9))
    with pytest.raises(StorageError, match="writer closed"):
        writer.put_session(make_session("a"))
    with pytest.raises(StorageError, match="writer closed"):
        writer.put_error(make_error("a"))


async def test_a_chunk_is_pending_until_committed_then_stored(
    storage: FaultyStorage, mock_clock: trio.testing.MockClock
) -> None:
    """The history-read rule: snapshot pending_chunks, then read storage;
    at every step the two together hold every chunk put. (A frozen clock:
    with autojump, the interval of the chunk queued meanwhile would elapse
    while a read's thread runs, and flush it under the test's feet.)"""
    writer = make_writer(storage)
    storage.before_commit, storage.after_commit = threading.Event(), threading.Event()
    late, early = make_chunk(seq=1, first_index=10), make_chunk(seq=0, first_index=0)
    record = make_session(event_count=20)
    flushed = trio.Event()

    async def seen() -> tuple[list[Chunk], list[Chunk]]:
        pending = writer.pending_chunks("s1")
        return pending, await writer.read(storage.read_chunks, "s1", 0, 1000)

    async def flush() -> None:
        await writer.flush()
        flushed.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, late)
        await queue_chunk(writer, early)
        writer.put_session(record)
        assert writer.pending_chunks("s1") == [early, late]  # by first_index
        assert writer.pending_session("s1") == make_session(event_count=20)
        nursery.start_soon(flush)

        assert await storage.events.receive() == "started"  # in flight, not committed
        record.event_count = 999  # the flush took a copy when it started
        assert await seen() == ([early, late], [])
        # Double buffer: new items queue beside the batch in flight.
        newer = make_chunk(seq=2, first_index=20)
        await queue_chunk(writer, newer)
        assert writer.pending_chunks("s1") == [early, late, newer]
        assert writer.pending_session("s1") == make_session(event_count=20)

        storage.before_commit.set()
        assert await storage.events.receive() == "committed"  # committed, not yet forgotten
        assert await seen() == ([early, late, newer], [early, late])

        storage.after_commit.set()
        await flushed.wait()
        assert await seen() == ([newer], [early, late])
        assert writer.pending_session("s1") is None
        await writer.close()
    assert await seen() == ([], [early, late, newer])


async def test_put_session_coalesces_latest_wins(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for count in (1, 2, 3):
            writer.put_session(make_session(event_count=count))
        writer.put_session(make_session("s2"))
        await writer.flush()
        assert storage.calls == [(2, 0, 0)]
        assert await writer.read(storage.get_session, "s1") == make_session(event_count=3)
        await writer.close()


async def test_duplicate_pending_seq_is_queued_once(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage)
    first = make_chunk(seq=0, payload=b"[1]")
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, first)
        await queue_chunk(writer, make_chunk(seq=0, payload=b"[2]"))
        assert writer.pending_chunks("s1") == [first] and writer.stats.pending_bytes == 3
        await writer.close()
    assert await stored(writer, storage) == [first]


def test_constructor_rejects_nonsense() -> None:
    memory = MemoryStorage()
    for bad in ({"batch_size": 0}, {"batch_interval": -1.0}, {"max_pending_bytes": 0}):
        kwargs = {"batch_size": 10, "batch_interval": 0.1, "max_pending_bytes": 10, **bad}
        with pytest.raises(ValueError):
            StorageWriter(memory, **kwargs)  # type: ignore[arg-type]


async def test_wait_committed_starts_the_flush_at_once_and_returns_after_commit(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage)  # interval: a minute
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, make_chunk(seq=0))
        ticket = writer.ticket
        assert writer.is_pending("s1", 0) and writer.committed < ticket
        t = trio.current_time()
        await writer.wait_committed(ticket)
        assert trio.current_time() - t < 1  # group commit, not the interval
        assert writer.committed >= ticket and not writer.is_pending("s1", 0)
        assert [c.seq for c in await stored(writer, storage)] == [0]
        await writer.wait_committed(ticket)  # already committed: returns at once
        await writer.close()


@pytest.mark.parametrize("codec", ["zstd", "deflate"])
async def test_chunks_are_stored_compressed_and_pending_ones_stay_raw(
    storage: FaultyStorage, codec: str
) -> None:
    writer = StorageWriter(
        storage, batch_size=BATCH_SIZE, batch_interval=60.0, max_pending_bytes=1 << 30, codec=codec
    )
    chunk = make_chunk(seq=0, count=50)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, chunk)
        assert writer.pending_chunks("s1") == [chunk]  # raw while queued
        await writer.flush()
        [stored_chunk] = await stored(writer, storage)
        await writer.close()
    assert stored_chunk.codec == codec
    assert len(stored_chunk.payload) * 3 < len(chunk.payload)
    assert raw_payload(stored_chunk, 1 << 20) == chunk.payload
    # Only the array's contents are compressed, so zstd chunks concatenate.
    assert b"[" + _core.decompress(codec, stored_chunk.payload, 1 << 20) + b"]" == chunk.payload
