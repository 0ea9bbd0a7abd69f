"""Viewers: a late joiner gets the latest full snapshot onwards, then every
new event live, in order, with no gap and no duplicate."""

from __future__ import annotations

import json
from functools import partial

import trio
from trio_websocket import open_websocket_url

from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import recv_json, send_batches, start_session, ws_url
from replaywire import _core
from rrweb import session_events


async def collect(ws, until_index: int) -> tuple[list[dict], list[bytes]]:
    """Read viewer messages until events up to ``until_index`` arrived."""
    messages: list[dict] = []
    events: list[bytes] = []
    next_index = None
    while next_index != until_index:
        with trio.fail_after(10):
            raw = await ws.get_message()
        msg = json.loads(raw)
        messages.append(msg)
        if msg["type"] in ("snapshot", "delta"):
            data = msg["data"]
            if next_index is not None:
                assert data["firstIndex"] == next_index, "gap or duplicate"
            raw_bytes = raw.encode()
            start = raw_bytes.index(b'"events":') + 9
            part = _core.split_events(raw_bytes[start:-2])
            assert len(part) == data["count"]
            events.extend(part)
            next_index = data["firstIndex"] + data["count"]
    return messages, events


async def test_late_viewer_gets_snapshot_then_live_events(server) -> None:
    events = list(session_events(3000, seed=4, checkout_every=1000))
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "live")
        await send_batches(tracker, "live", events[:1500])
        async with open_websocket_url(ws_url(server, "viewer")) as viewer:
            await viewer.send_message(
                json.dumps({"type": "viewer_join_session", "data": {"sessionId": "live"}})
            )
            joined = await recv_json(viewer)
            # The recorded events are from 2023: the tracker's clock looks far behind.
            assert joined["data"].pop("clockSkewMs") < -3e10
            # The latest checkout (meta + full snapshot) was at index 1000.
            assert joined == {
                "type": "viewer_joined",
                "data": {"sessionId": "live", "fromIndex": 1000, "nextIndex": 1500},
            }
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(send_batches, tracker, "live", events[1500:], first_seq=30)
                )
                messages, got = await collect(viewer, 3000)
    assert messages[0]["type"] == "snapshot"
    assert messages[0]["data"]["firstIndex"] == 1000
    assert all(m["type"] == "delta" for m in messages[1:])
    assert got == events[1000:]
    assert json.loads(got[0])["type"] == 4 and json.loads(got[1])["type"] == 2


async def test_viewer_from_index_and_end_of_session(server) -> None:
    events = list(session_events(400, seed=8))
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "ending")
        await send_batches(tracker, "ending", events[:200])
        async with open_websocket_url(ws_url(server, "viewer")) as viewer:
            await viewer.send_message(
                json.dumps(
                    {"type": "viewer_join_session", "data": {"sessionId": "ending", "fromIndex": 0}}
                )
            )
            assert (await recv_json(viewer))["type"] == "viewer_joined"
            await send_batches(tracker, "ending", events[200:], first_seq=4)
            _, got = await collect(viewer, 400)
            assert got == events
            await tracker.send_message(
                json.dumps({"type": "session_end", "data": {"sessionId": "ending"}})
            )
            assert (await recv_json(tracker))["type"] == "session_ended"
            assert await recv_json(viewer) == {
                "type": "session_ended",
                "data": {"sessionId": "ending", "nextIndex": 400},
            }


async def test_viewer_replays_an_ended_session_from_storage(server) -> None:
    events = list(session_events(250, seed=12))
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "old")
        await send_batches(tracker, "old", events)
        await tracker.send_message(json.dumps({"type": "session_end", "data": {}}))
        assert (await recv_json(tracker))["type"] == "session_ended"
    async with open_websocket_url(ws_url(server, "viewer")) as viewer:
        await viewer.send_message(
            json.dumps({"type": "viewer_join_session", "data": {"sessionId": "old"}})
        )
        assert (await recv_json(viewer))["data"]["fromIndex"] == 0
        _, got = await collect(viewer, 250)
        assert got == events
        assert (await recv_json(viewer))["type"] == "session_ended"
        await viewer.send_message(
            json.dumps(
                {
                    "type": "get_session_events",
                    "data": {"sessionId": "old", "fromIndex": 100, "limit": 20},
                }
            )
        )
        page = await recv_json(viewer)
        assert page["type"] == "session_events"
        assert (page["data"]["firstIndex"], page["data"]["count"]) == (100, 20)
        assert [
            json.dumps(e, separators=(",", ":")).encode() for e in page["data"]["events"]
        ] == events[100:120]


async def test_unknown_session_and_leave(server) -> None:
    async with open_websocket_url(ws_url(server, "viewer")) as viewer:
        await viewer.send_message(
            json.dumps({"type": "viewer_join_session", "data": {"sessionId": "nope"}})
        )
        reply = await recv_json(viewer)
        assert reply["type"] == "error" and reply["data"]["code"] == "unknown_session"
        await viewer.send_message(
            json.dumps({"type": "viewer_leave_session", "data": {"sessionId": "nope"}})
        )
        assert await recv_json(viewer) == {"type": "viewer_left", "data": {"sessionId": "nope"}}


async def test_viewer_behind_the_ring_buffer_is_served_from_storage(start_server) -> None:
    # Memory keeps 100 events per session; a viewer asking for index 0 of a
    # 1000-event session gets the first 900 from storage, then the rest from
    # memory and live, with no gap.
    server = await start_server(max_events_per_session=100, viewer_batch_events=300)
    events = list(session_events(1200, seed=14))
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "trimmed")
        await send_batches(tracker, "trimmed", events[:1000])
        assert server.hub.ingest.first_index("default:trimmed") >= 900
        async with open_websocket_url(ws_url(server, "viewer")) as viewer:
            await viewer.send_message(
                json.dumps(
                    {
                        "type": "viewer_join_session",
                        "data": {"sessionId": "trimmed", "fromIndex": 0},
                    }
                )
            )
            assert (await recv_json(viewer))["data"]["fromIndex"] == 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(send_batches, tracker, "trimmed", events[1000:], first_seq=20)
                )
                _, got = await collect(viewer, 1200)
    assert got == events


async def test_a_late_joiner_renders_even_after_memory_trimmed_the_snapshot(server) -> None:
    """A viewer joining after 50,000 later events (memory keeps 20,000 per
    session, so the meta event and full snapshot were trimmed) still gets
    them first, read back from storage, then everything after them and the
    live events, with no gap."""
    events = list(session_events(50_300, seed=21))
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "late")
        await send_batches(tracker, "late", events[:50_002], batch=500)
        buffers = server.hub.ingest
        assert (
            buffers.first_index("default:late") > 2
            and buffers.keyframe_index("default:late") is None
        )
        async with open_websocket_url(
            ws_url(server, "viewer"), max_message_size=64 << 20
        ) as viewer:
            await viewer.send_message(
                json.dumps({"type": "viewer_join_session", "data": {"sessionId": "late"}})
            )
            joined = await recv_json(viewer)
            assert joined["data"]["fromIndex"] == 0 and joined["data"]["nextIndex"] == 50_002
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(send_batches, tracker, "late", events[50_002:], first_seq=101)
                )
                messages, got = await collect(viewer, 50_300)
    assert messages[0]["type"] == "snapshot" and messages[0]["data"]["firstIndex"] == 0
    assert [json.loads(e)["type"] for e in got[:2]] == [4, 2]  # meta, then full snapshot
    assert got == events
    record = await server.hub.get_record("default:late")
    assert record is not None and record.keyframe_index == 0


async def test_viewers_beyond_the_limit_are_refused_until_one_leaves(start_server) -> None:
    """MAX_VIEWERS_PER_SESSION: one viewer too many gets ``viewer_limit`` and
    keeps its connection; once a viewer leaves, it may join."""
    server = await start_server(max_viewers_per_session=2)
    events = list(session_events(20, seed=30))
    join = json.dumps({"type": "viewer_join_session", "data": {"sessionId": "busy"}})
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "busy")
        await send_batches(tracker, "busy", events)
        async with (
            open_websocket_url(ws_url(server, "viewer")) as first,
            open_websocket_url(ws_url(server, "viewer")) as second,
            open_websocket_url(ws_url(server, "viewer")) as third,
        ):
            for viewer in (first, second):
                await viewer.send_message(join)
                assert (await recv_json(viewer))["type"] == "viewer_joined"
            await third.send_message(join)
            refused = await recv_json(third)
            assert refused["type"] == "error" and refused["data"]["code"] == "viewer_limit"
            leave = {"type": "viewer_leave_session", "data": {"sessionId": "busy"}}
            await first.send_message(json.dumps(leave))
            with trio.fail_after(5):
                while server.hub.live["default:busy"].viewers > 1:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            await third.send_message(join)
            assert (await recv_json(third))["type"] == "viewer_joined"
