"""Clock skew: a tracker whose clock is 10 minutes fast. The server measures
the offset and reports it (``GET /sessions/{id}``, ``/sessions/active``,
``viewer_joined``), stamps every stored chunk with its own receive time, and
every live message a viewer gets carries the server's time, in every codec
(decoded with the reference client, replaywire.client)."""

from __future__ import annotations

import json
import random
import time

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from e2e.clients import get_json, recv_json, send_batches, start_session, ws_url
from e2e.storages import database_url  # noqa: F401 (fixture: SQLite and PostgreSQL)
from replaywire.client import EventsMessage, ViewerStream, decode_message
from rrweb import incremental, session_events

AHEAD_MS = 600_000  # the tracker's clock is 10 minutes fast
BATCHES = 12


def tracker_now_ms() -> float:
    return time.time() * 1000 + AHEAD_MS


async def send_like_a_tracker(tracker: WebSocketConnection, sid: str, first_seq: int) -> int:
    """Batches as rrweb and our tracker make them: events stamped by the
    (fast) tracker clock as they happen, sent shortly after. Returns the
    next seq."""
    rng = random.Random(first_seq)
    seq = first_seq
    for _ in range(BATCHES // 2):
        # A few events over the last ~100 ms of the tracker's clock.
        now = tracker_now_ms()
        events = [
            json.dumps(incremental(now - 100 + 20 * i, rng), separators=(",", ":")).encode()
            for i in range(5)
        ]
        await send_batches(tracker, sid, events, batch=5, first_seq=seq)
        seq += 1
        await trio.sleep(0.02)  # real time passes between batches, as in a browser
    return seq


async def live_messages(viewer: WebSocketConnection, until_index: int) -> list[EventsMessage]:
    """Events messages up to ``until_index``, each checked against the test's
    clock as it arrives: its serverTime is the server's time now, give or
    take the time it took to get here."""
    stream, messages = ViewerStream(), []
    while stream.next_index != until_index:
        with trio.fail_after(10):
            frame = await viewer.get_message()
        received_ms = time.time() * 1000
        stream.feed(frame)
        message = decode_message(frame)
        if isinstance(message, EventsMessage):
            assert message.server_time is not None, message
            assert abs(message.server_time - received_ms) < 1000, (message, received_ms)
            messages.append(message)
    return messages


@pytest.mark.parametrize("codec", ["none", "zstd"])
async def test_a_tracker_10_minutes_fast(server, codec: str) -> None:
    sid = f"fast-{codec}"
    before = time.time()
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, sid)
        start = list(session_events(2, start_ts=tracker_now_ms() - 50))  # meta + full snapshot
        await send_batches(tracker, sid, start, first_seq=0)
        seq = await send_like_a_tracker(tracker, sid, 1)

        url = ws_url(server, "viewer") + f"&codec={codec}"
        async with open_websocket_url(url) as viewer:
            await viewer.send_message(
                json.dumps({"type": "viewer_join_session", "data": {"sessionId": sid}})
            )
            joined = (await recv_json(viewer))["data"]
            assert joined["fromIndex"] == 0
            assert abs(joined["clockSkewMs"] - AHEAD_MS) < 1000, joined
            snapshot = await live_messages(viewer, joined["nextIndex"])
            assert snapshot[0].type == "snapshot"

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_like_a_tracker, tracker, sid, seq)
                end = joined["nextIndex"] + BATCHES // 2 * 5
                deltas = await live_messages(viewer, end)
        assert deltas and all(m.type == "delta" for m in deltas)

        info = await get_json(server, f"/sessions/{sid}")
        assert abs(info["clockSkewMs"] - AHEAD_MS) < 1000, info
        # Never more ahead than the tracker is: delays only lower a sample.
        assert info["clockSkewMs"] <= AHEAD_MS
        active = await get_json(server, "/sessions/active")
        [entry] = [s for s in active["sessions"] if s["sessionId"] == sid]
        assert entry["clockSkewMs"] == info["clockSkewMs"]
        await tracker.send_message(json.dumps({"type": "session_end", "data": {"sessionId": sid}}))
        assert (await recv_json(tracker))["type"] == "session_ended"
    after = time.time()

    # Ended: read back from storage, with each chunk's receive time.
    stored = await get_json(server, f"/sessions/{sid}")
    assert stored["live"] is False
    assert stored["clockSkewMs"] == info["clockSkewMs"]
    key = f"default:{sid}"  # storage keys sessions by tenant (development mode: default)
    chunks = await trio.to_thread.run_sync(server.hub.storage.read_chunks, key, 0, 10_000)
    assert len(chunks) == 1 + BATCHES
    received = [c.received_at for c in chunks]
    assert all(r is not None and before <= r <= after for r in received), received
    assert received == sorted(received)  # type: ignore[type-var]
