"""What an idle tracker connection keeps: the WebSocket and its session,
not the HTTP exchange it started with, nor buffers sized by its last
message. A server holds many of these (docs/benchmarks.md, idle
connections), so each one's objects count."""

from __future__ import annotations

import gc
from typing import Any

import h11
import trio

from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.rawtracker import open_tracker
from replaywire import Server, _core
from rrweb import batch_message, session_events

# A message of several reads' worth: its buffers are far past anything idle.
LARGE_EVENTS = 2000


def _alive(kind: type) -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, kind))


async def test_an_upgraded_connection_keeps_no_http_state(start_server: Any) -> None:
    server: Server = await start_server()
    before = _alive(h11.Connection)
    async with open_tracker(server, "idle-1"), open_tracker(server, "idle-2"):
        # Both upgraded and started, then silent: their h11 connections,
        # request heads and read buffers are gone.
        assert _alive(h11.Connection) == before


def _frames(task: trio.lowlevel.Task) -> list[str]:
    """Where ``task`` waits: ``module:qualname`` of each of its coroutines,
    outermost first."""
    names = []
    coro: Any = task.coro
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or coro.gi_frame
        names.append(f"{frame.f_globals['__name__']}:{frame.f_code.co_qualname}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return names


def _tasks(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    found = [task]
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            found += _tasks(child)
    return found


async def test_an_idle_tracker_waits_in_few_frames(
    start_server: Any,
    ws_backend: str,  # noqa: F811  (the fixture imported above)
) -> None:
    """Each call an idle connection's task waits in holds a coroutine frame
    as long as the connection is idle. With the Rust codec and acks on
    receipt the tracker waits for its socket itself: above it only the
    gate, the HTTP handler and the server's WebSocket bookkeeping; below it
    only trio's wait. (wsproto's reads wait inside the connection, and
    durable acks in a nursery of two tasks, as they always did.)"""
    server: Server = await start_server(ack_mode="received")
    async with open_tracker(server, "idle-frames"):
        await trio.sleep(0.05)  # the server's task is back waiting for the peer
        chains = [_frames(task) for task in _tasks(trio.lowlevel.current_root_task())]
    (chain,) = [c for c in chains if "replaywire.protocol.tracker:_Tracker.serve" in c]
    ours = [name for name in chain if name.startswith("replaywire.")]
    expected = [
        "replaywire.http.listener:ConnectionGate.serve",
        "replaywire.http.server:handle_connection",
        "replaywire.app:Server.run_websocket",
        "replaywire.protocol.tracker:_Tracker.serve",
    ]
    if ws_backend == "rust":
        assert ours == expected, chain
    else:
        assert ours[: len(expected)] == expected, chain


async def test_a_tracker_engine_lets_go_of_its_buffers_between_messages() -> None:
    """A large batch, read in pieces, fills the engine's frame buffer and
    queues; once it is answered, the connection holds no allocation."""
    queue = _core.ChunkQueue(batch_size=64, max_pending_bytes=1 << 26)
    ingest = _core.Ingest(queue, max_seq_window=64)
    engine = _core.TrackerEngine(
        ingest,
        _core.FrameDecoder(max_message_bytes=1 << 22, skip_oversized=True),
        max_sessions=4,
        max_message_bytes=1 << 22,
        max_event_bytes=1 << 20,
        max_events_per_batch=10_000,
    )
    message = batch_message("s", 0, list(session_events(LARGE_EVENTS)))
    frame = _core.encode_client_frame(_core.OP_TEXT, message, b"\x01\x02\x03\x04")
    assert len(frame) > 2 * 65536
    half = len(frame) // 2
    engine.feed(frame[:half], 0.0, 0.0, 0)
    assert engine.buffer_capacity >= engine.buffered_bytes > 0
    engine.feed(frame[half:], 0.0, 0.0, 0)  # answered: the session was never started
    assert engine.buffered_bytes == 0
    assert engine.buffer_capacity == 0
