"""The writer through a storage outage, with the real spool on disk: flushes
go to the spool and count as committed, new chunks are refused only when the
spool is full, the spool drains into storage in order once it is back, and a
spool left by a crash is replayed before anything else."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

from replaywire.storage import StorageError, StorageWriter
from replaywire.storage.spool import Spool

from .factories import FaultyStorage, make_chunk, make_session, make_writer, queue_chunk, stored


def open_spool(tmp_path: Path, max_bytes: int = 1 << 30) -> Spool:
    spool = Spool(tmp_path / "spool", max_bytes=max_bytes)
    spool.open()
    return spool


async def drained(writer: StorageWriter) -> None:
    """Return once the writer left the spooling state (within 30 s)."""
    for _ in range(3000):
        if not writer.stats.spooling:
            return
        await trio.sleep(0.01)
    raise AssertionError("the spool was not drained within 30 s")


async def test_failed_flush_is_spooled_and_counts_as_committed(
    storage: FaultyStorage, tmp_path: Path
) -> None:
    storage.fail_first = 1_000_000  # down until the test says otherwise
    spool = open_spool(tmp_path)
    writer = make_writer(storage, spool=spool)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, make_chunk(seq=0))
        writer.put_session(make_session(event_count=10))
        ticket = writer.ticket
        await writer.wait_committed(ticket)  # returns although storage is down

        stats = writer.stats
        assert stats.spooling and not stats.healthy and stats.spool_records == 1
        assert stats.pending_chunks == 0 and stats.spooled_chunks == 1
        assert writer.spooled_spans("s1") == {0: (0, 10)}
        assert writer.pending_session("s1") == make_session(event_count=10)

        # While spooling, every flush goes to the spool: storage sees
        # nothing out of order even once it is back.
        attempts = storage.attempts
        await queue_chunk(writer, make_chunk(seq=1))
        await writer.flush()
        assert writer.stats.spool_records == 2
        assert storage.attempts <= attempts + 1  # at most a drain attempt

        storage.fail_first = 0
        await drained(writer)
        assert [c.seq for c in await stored(writer, storage)] == [0, 1]
        assert writer.stats.spool_bytes == 0 and writer.stats.drained_chunks == 2
        assert writer.spooled_spans("s1") == {} and writer.stats.healthy

        await queue_chunk(writer, make_chunk(seq=2))  # direct again
        await writer.flush()
        assert writer.stats.spool_records == 0
        assert [c.seq for c in await stored(writer, storage)] == [0, 1, 2]
        await writer.close()
    spool.close()


async def test_later_session_record_wins_after_the_drain(
    storage: FaultyStorage, tmp_path: Path
) -> None:
    storage.fail_first = 1_000_000
    spool = open_spool(tmp_path)
    writer = make_writer(storage, spool=spool)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for count in (10, 20, 30):
            await queue_chunk(writer, make_chunk(seq=count // 10 - 1))
            writer.put_session(make_session(event_count=count))
            await writer.flush()
        storage.fail_first = 0
        await drained(writer)
        assert await writer.read(storage.get_session, "s1") == make_session(event_count=30)
        await writer.close()
    spool.close()


async def test_a_full_spool_refuses_new_chunks_but_keeps_accepted_ones(
    storage: FaultyStorage, tmp_path: Path
) -> None:
    storage.fail_first = 1_000_000
    chunk = make_chunk(seq=0)
    spool = open_spool(tmp_path, max_bytes=3 * len(chunk.payload))
    writer = make_writer(storage, spool=spool)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        assert writer.has_room(10**9)  # storage works as far as anyone knows
        await queue_chunk(writer, chunk)
        await writer.flush()
        assert writer.stats.spooling
        assert writer.has_room(len(chunk.payload))
        assert not writer.has_room(3 * len(chunk.payload))
        await queue_chunk(writer, make_chunk(seq=1))
        await writer.flush()
        assert not writer.has_room(len(chunk.payload)) and writer.stats.spool_full
        storage.fail_first = 0
        await drained(writer)
        assert writer.has_room(len(chunk.payload)) and not writer.stats.spool_full
        assert [c.seq for c in await stored(writer, storage)] == [0, 1]
        await writer.close()
    spool.close()


async def test_recover_replays_a_spool_left_by_an_earlier_run(
    storage: FaultyStorage, tmp_path: Path
) -> None:
    spool = open_spool(tmp_path)
    spool.append([make_session(event_count=20)], [make_chunk(seq=0), make_chunk(seq=1)], [])
    spool.close()

    spool = open_spool(tmp_path)  # the next start
    writer = make_writer(storage, spool=spool)
    storage.fail_first = 2  # storage needs a moment: recover retries
    with trio.fail_after(60):
        await writer.recover()
    assert spool.empty and storage.attempts == 3
    assert [c.seq for c in await stored(writer, storage)] == [0, 1]
    assert await writer.read(storage.get_session, "s1") == make_session(event_count=20)
    spool.close()


async def test_close_while_spooling_keeps_the_spool_for_the_next_start(
    storage: FaultyStorage, tmp_path: Path
) -> None:
    storage.fail_first = 1_000_000
    spool = open_spool(tmp_path)
    writer = make_writer(storage, spool=spool)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, make_chunk(seq=0))
        await writer.close()  # does not raise: the chunk is safe in the spool
    assert spool.records == 1
    spool.close()
    reopened = open_spool(tmp_path)
    piece = reopened.read(1 << 20)
    assert piece is not None and [c.seq for c in piece.chunks] == [0]
    reopened.close()


async def test_wait_committed_raises_once_run_is_gone(storage: FaultyStorage) -> None:
    writer = make_writer(storage)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, make_chunk(seq=0))
        ticket = writer.ticket
        nursery.cancel_scope.cancel()
    with pytest.raises(StorageError, match="stopped"):
        await writer.wait_committed(ticket)


async def test_spill_saves_what_a_hanging_storage_holds_for_the_next_start(
    storage: FaultyStorage, tmp_path: Path
) -> None:
    """A forced shutdown while a storage call hangs: spill() appends the
    flush in flight and the queued chunks to the spool without waiting for
    it, and the next start replays them all."""
    gate = threading.Event()
    storage.before_commit = gate  # the first write hangs until the test ends
    spool = open_spool(tmp_path)
    writer = make_writer(storage, spool=spool)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, make_chunk(seq=0))
        writer.put_session(make_session(event_count=10))
        nursery.start_soon(writer.flush)
        assert await storage.events.receive() == "started"  # the write hangs
        await queue_chunk(writer, make_chunk(seq=1))  # queued behind it
        with trio.fail_after(10):
            assert await writer.spill() == 2
        assert writer.spilled_chunks == 2
        nursery.cancel_scope.cancel()
        gate.set()  # let the abandoned write go (it commits seq 0 after all)
    spool.close()

    spool = open_spool(tmp_path)  # the next start: replay, seq 0 not doubled
    storage.before_commit = None
    writer = make_writer(storage, spool=spool)
    with trio.fail_after(60):
        await writer.recover()
    assert [c.seq for c in await stored(writer, storage)] == [0, 1]
    spool.close()
