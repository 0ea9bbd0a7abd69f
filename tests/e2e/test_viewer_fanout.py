"""Live fan-out: one encoding per session tick shared by every viewer of a
codec, compressed binary frames a standard decoder reads, a stalled viewer
resynchronised without touching the tracker, and resume with fromIndex."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import trio
from trio_websocket import open_websocket_url
from websockets.sync.client import connect

from conftest import make_config
from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import send_batches, start_session, ws_url
from replaywire import Server
from replaywire.client import ViewerStream, decode_message
from rrweb import session_events


def parsed(events: list[bytes]) -> list[object]:
    return [json.loads(e) for e in events]


def is_end(frame: bytes | str) -> bool:
    return isinstance(frame, str) and frame.startswith('{"type":"session_ended"')


async def watch(server: Server, session_id: str, codec: str, joined: trio.Semaphore) -> list:
    """Join, then collect every frame until ``session_ended``."""
    frames: list = []
    join = {"type": "viewer_join_session", "data": {"sessionId": session_id}}
    async with open_websocket_url(f"{ws_url(server, 'viewer')}&codec={codec}") as ws:
        await ws.send_message(json.dumps(join))
        reply = json.loads(await ws.get_message())
        assert reply["type"] == "viewer_joined", reply
        joined.release()
        while not frames or not is_end(frames[-1]):
            with trio.fail_after(60):
                frames.append(await ws.get_message())
    return frames


async def test_200_viewers_get_identical_complete_streams(server: Server) -> None:
    events = list(session_events(6000, seed=21))
    codecs = ["none", "zstd", "deflate", "none"] * 50  # 200 viewers
    results: list[list] = [[] for _ in codecs]
    joined = trio.Semaphore(0)

    async def viewer(n: int) -> None:
        results[n] = await watch(server, "busy", codecs[n], joined)

    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "busy")
        async with trio.open_nursery() as nursery:
            for n in range(len(codecs)):
                nursery.start_soon(viewer, n)
            for _ in codecs:
                await joined.acquire()
            await send_batches(tracker, "busy", events, batch=50, window=8)
            await tracker.send_message(json.dumps({"type": "session_end", "data": {}}))

    sent = parsed(events)
    first_of_codec: dict[str, list] = {}
    for codec, frames in zip(codecs, results, strict=True):
        reference = first_of_codec.setdefault(codec, frames)
        if reference is frames:
            # One viewer per codec is decoded in full (with the reference
            # decoder, which checks continuity)...
            stream = ViewerStream()
            received = [e for frame in frames for e in stream.feed(frame)]
            assert received == sent, f"{codec} viewer missed or reordered events"
            assert stream.ended and stream.resyncs == 0
        else:
            # ...and every other viewer of that codec got the very same bytes:
            # deltas are encoded once per session tick. The snapshot is each
            # viewer's own, stamped with the serverTime it was built at.
            assert frames[1:] == reference[1:]
            snapshot, first = decode_message(frames[0]), decode_message(reference[0])
            assert snapshot.type == "snapshot"
            assert replace(snapshot, server_time=None) == replace(first, server_time=None)
    zstd_frames = first_of_codec["zstd"]
    assert all(decode_message(f).codec == "zstd" for f in zstd_frames[:-1])
    assert server.metrics.viewer_ticks_total._value.get() < len(events) / 50 * 2
    assert server.metrics.viewer_fanout_seconds_total._value.get() > 0  # the loop's share is seen
    raw_bytes = sum(len(f) for f in first_of_codec["none"])
    assert sum(len(f) for f in zstd_frames) * 3 < raw_bytes  # compressed: a fraction


def stalled_viewer(port: int, session_id: str, ready: trio.Event, go: trio.Event, token) -> list:
    """A websockets client that joins, then stops reading (its queue holds
    one message, so the socket is left unread) until ``go``."""
    with connect(f"ws://127.0.0.1:{port}/ws?type=viewer", max_queue=1) as ws:
        ws.send(json.dumps({"type": "viewer_join_session", "data": {"sessionId": session_id}}))
        trio.from_thread.run_sync(ready.set, trio_token=token)
        trio.from_thread.run(go.wait, trio_token=token)
        frames = []
        while True:
            frame = ws.recv(timeout=30)
            frames.append(frame)
            if is_end(frame):
                return frames


async def test_stalled_viewer_is_resynced_and_the_tracker_unaffected(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(make_config(tmp_path, viewer_backlog_bytes=64 * 1024))
    await nursery.start(server.run)
    # ~18 MB of events: far more than the loopback socket buffers can hide.
    events = list(session_events(80_000, seed=3, checkout_every=5000))
    ready, go = trio.Event(), trio.Event()
    token = trio.lowlevel.current_trio_token()
    result: list = []

    async def run_viewer() -> None:
        result.append(
            await trio.to_thread.run_sync(stalled_viewer, server.port, "slow", ready, go, token)
        )

    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "slow")
        async with trio.open_nursery() as viewers:
            viewers.start_soon(run_viewer)
            await ready.wait()
            acked = await send_batches(tracker, "slow", events, batch=50, window=8)
            assert sorted(acked) == list(range(len(events) // 50))
            assert server.metrics.viewer_resyncs_total._value.get() >= 1
            await tracker.send_message(json.dumps({"type": "session_end", "data": {}}))
            go.set()

    frames = result[0]
    stream = ViewerStream()
    received = [e for frame in frames for e in stream.feed(frame)]
    assert stream.resyncs >= 1 and stream.ended
    # After the last resync snapshot the stream is contiguous to the end.
    assert stream.next_index == len(events)
    assert received[-1] == json.loads(events[-1])


async def test_viewer_resumes_with_from_index(server: Server) -> None:
    events = list(session_events(3000, seed=8))
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "resume")
        await send_batches(tracker, "resume", events[:2000], batch=50, window=8)
        async with open_websocket_url(f"{ws_url(server, 'viewer')}&codec=zstd") as viewer:
            join = {
                "type": "viewer_join_session",
                "data": {"sessionId": "resume", "fromIndex": 1234},
            }
            await viewer.send_message(json.dumps(join))
            assert json.loads(await viewer.get_message())["data"]["fromIndex"] == 1234
            stream = ViewerStream()
            received: list = []
            while stream.next_index != 2000:
                received += stream.feed(await viewer.get_message())
            assert received == parsed(events[1234:2000])
            await send_batches(tracker, "resume", events[2000:], batch=50, window=8, first_seq=40)
            while stream.next_index != 3000:
                received += stream.feed(await viewer.get_message())
            assert received == parsed(events[1234:])


def pmd_viewer(port: int, session_id: str, ready: trio.Event, token) -> tuple[list, object]:
    """The websockets client (permessage-deflate on by default) as a viewer."""
    with connect(f"ws://127.0.0.1:{port}/ws?type=viewer") as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        ws.send(json.dumps({"type": "viewer_join_session", "data": {"sessionId": session_id}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "viewer_joined"
        trio.from_thread.run_sync(ready.set, trio_token=token)
        frames = []
        while not frames or not is_end(frames[-1]):
            frames.append(ws.recv(timeout=30))
        return frames, extensions


async def test_permessage_deflate_viewers_receive_every_event_in_order(server: Server) -> None:
    events = list(session_events(3000, seed=13))
    token = trio.lowlevel.current_trio_token()
    results: list = []

    async def run_viewer(ready: trio.Event) -> None:
        results.append(await trio.to_thread.run_sync(pmd_viewer, server.port, "pmd", ready, token))

    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "pmd")
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                ready = trio.Event()
                nursery.start_soon(run_viewer, ready)
                await ready.wait()
            await send_batches(tracker, "pmd", events, batch=50, window=8)
            await tracker.send_message(json.dumps({"type": "session_end", "data": {}}))
    raw = sum(len(e) for e in events)
    for frames, extensions in results:
        assert extensions and "permessage-deflate" in extensions
        stream = ViewerStream()
        assert [e for frame in frames for e in stream.feed(frame)] == parsed(events)
    # The deltas left the server deflated (once per tick for all three).
    assert server.metrics.viewer_bytes_total._value.get() * 2 < 3 * raw
