"""StorageWriter when storage is slow or failing: backpressure, cancellation,
retries with backoff, bounded error records, and a run() that is cancelled.
Same clocks and fault injector as test_writer.py.
"""

from __future__ import annotations

import itertools
import threading

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from replaywire.storage import MemoryStorage, StorageError
from replaywire.storage import writer as writer_module

from .factories import (
    FaultyStorage,
    make_chunk,
    make_error,
    make_session,
    make_writer,
    queue_chunk,
    stored,
)


async def test_backpressure_holds_a_tracker_until_a_flush_frees_room(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage, max_pending_bytes=1000)
    c0, c1, c2 = (make_chunk(seq=s, payload=b'["' + b"x" * 596 + b'"]') for s in range(3))
    assert len(c0.payload) == 600
    storage.before_commit = threading.Event()
    put_done = trio.Event()

    async def put_third() -> None:
        await queue_chunk(writer, c2)
        put_done.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, c0)
        await queue_chunk(writer, c1)  # 1200 bytes pending: at the limit now
        t = trio.current_time()
        nursery.start_soon(put_third)
        assert await storage.events.receive() == "started"
        assert storage.attempt_times == [t]  # being held back starts a flush at once
        await trio.testing.wait_all_tasks_blocked()
        assert not put_done.is_set()
        assert writer.stats.pending_bytes == 1200

        gate, storage.before_commit = storage.before_commit, threading.Event()
        gate.set()  # the flush in flight goes on; the next one will wait
        await put_done.wait()
        assert await stored(writer, storage) == [c0, c1]
        assert writer.stats.flushes == 1
        assert writer.pending_chunks("s1") == [c2]
        storage.before_commit.set()
        await writer.close()
    assert await stored(writer, storage) == [c0, c1, c2]


async def test_wait_for_room_flushes_at_once_and_raises_once_closed(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    """What a tracker connection waits in when its engine stops with
    backpressure (the queue has no room): a flush starts at once, not at
    the interval."""
    writer = make_writer(storage, max_pending_bytes=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.wait_for_room()  # room: returns at once
        await queue_chunk(writer, make_chunk(seq=0))  # now full
        t1 = trio.current_time()
        await writer.wait_for_room()  # starts a flush itself and waits for it
        assert [await storage.events.receive() for _ in "12"] == ["started", "committed"]
        assert writer.stats.pending_bytes == 0

        await queue_chunk(writer, make_chunk(seq=1))
        t2 = trio.current_time()
        assert not writer.chunks.has_room()  # full: the engine would stop here
        assert [c.seq for c in writer.pending_chunks("s1")] == [1]
        await writer.wait_for_room()
        assert [await storage.events.receive() for _ in "12"] == ["started", "committed"]
        assert storage.attempt_times == [t1, t2]  # both at once, not at the interval
        await queue_chunk(writer, make_chunk(seq=2))
        await writer.close()
        with pytest.raises(StorageError, match="writer closed"):
            await queue_chunk(writer, make_chunk(seq=3))
        with pytest.raises(StorageError, match="writer closed"):
            await writer.wait_for_room()
    assert [c.seq for c in await stored(writer, storage)] == [0, 1, 2]


async def test_cancelled_while_held_back_queues_nothing(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage, max_pending_bytes=1)
    storage.before_commit = threading.Event()
    scope = trio.CancelScope()

    async def held() -> None:
        with scope:
            await queue_chunk(writer, make_chunk(seq=1))

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, make_chunk(seq=0))
        nursery.start_soon(held)
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert scope.cancelled_caught
        assert [c.seq for c in writer.pending_chunks("s1")] == [0]
        storage.before_commit.set()
        await writer.close()
    assert [c.seq for c in await stored(writer, storage)] == [0]


async def test_retries_a_failing_storage_with_capped_backoff_and_loses_nothing(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    storage.fail_first = 9
    writer = make_writer(storage)
    storage.probe = lambda: (writer.stats, len(writer.pending_chunks("s1")))
    chunks = [make_chunk(seq=s) for s in range(5)]
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        with capture_logs() as logs:
            for chunk in chunks:
                await queue_chunk(writer, chunk)
            writer.put_session(make_session(event_count=50))
            writer.put_error(make_error())
            await writer.flush()  # returns only once a write went through

        assert storage.attempts == 10 and storage.calls == [(1, 5, 1)]
        # Doubling from 0.05 s, capped at 5 s, each wait jittered to 50-100%.
        delays = [b - a for a, b in itertools.pairwise(storage.attempt_times)]
        nominal = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
        assert all(n / 2 - 1e-6 <= d <= n + 1e-6 for d, n in zip(delays, nominal, strict=True))
        # While failing: unhealthy, and every chunk still visible as pending.
        for attempt, (stats, pending) in enumerate(storage.observed[1:], start=1):
            assert (stats.healthy, stats.write_failures, pending) == (False, attempt, 5)
        assert writer.stats.healthy and writer.stats.write_failures == 9
        failed = [e for e in logs if e["event"] == "storage_write_failed"]
        assert len(failed) == 9 and failed[0]["retryable"] is True
        assert failed[-1]["retry_in"] == 5.0
        assert [e["event"] for e in logs][-1] == "storage_write_recovered"

        assert await stored(writer, storage) == chunks
        assert await writer.read(storage.session_errors, "s1") == [make_error()]
        await writer.close()


async def test_close_releases_a_tracker_held_by_backpressure(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage, max_pending_bytes=1)
    storage.before_commit = threading.Event()
    outcome: list[BaseException] = []

    async def held() -> None:
        try:
            await queue_chunk(writer, make_chunk(seq=1))
        except StorageError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, make_chunk(seq=0))
        nursery.start_soon(held)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(writer.close)
        await trio.testing.wait_all_tasks_blocked()
        assert [str(e) for e in outcome] == ["writer closed"]
        storage.before_commit.set()
    assert [c.seq for c in await stored(writer, storage)] == [0]


async def test_errors_beyond_the_bound_are_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    monkeypatch.setattr(writer_module, "MAX_PENDING_ERRORS", 50)
    memory = MemoryStorage()
    memory.open()
    writer = make_writer(memory)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(55):
            writer.put_error(make_error(seq=i))
        assert writer.stats.errors_dropped == 5
        await writer.close()
    kept = memory.session_errors("s1", limit=100)
    assert sorted(e.seq for e in kept if e.seq is not None) == list(range(50))


async def test_cancelled_run_makes_flush_and_close_raise(
    storage: FaultyStorage, autojump_clock: trio.testing.MockClock
) -> None:
    writer = make_writer(storage)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await queue_chunk(writer, make_chunk(seq=0))
        nursery.cancel_scope.cancel()
    with pytest.raises(StorageError, match="stopped"):
        await writer.flush()
    with pytest.raises(StorageError, match="1 chunks unwritten"):
        await writer.close()
