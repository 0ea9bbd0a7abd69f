"""A tracker streams a session; every batch is acked, stored once, and reads
back byte-for-byte — also after a restart."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import open_websocket_url
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from conftest import stop
from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import events_of, get_json, http, recv_json, send_batches, start_session, ws_url
from e2e.storages import database_url  # noqa: F401  (runs every test on each backend)
from rrweb import batch_message, session_events, start_message


async def read_all_events(server, sid: str) -> list[bytes]:
    out: list[bytes] = []
    while True:
        status, _, body = await http(
            server, f"/sessions/{sid}/events?from_index={len(out)}&limit=3000"
        )
        assert status == 200, body
        page = events_of(body)
        if not page:
            return out
        assert json.loads(body)["fromIndex"] == len(out)
        out.extend(page)


async def test_10k_event_session_is_acked_and_reads_back_byte_for_byte(server) -> None:
    events = list(session_events(10_000, seed=7))
    async with open_websocket_url(ws_url(server)) as ws:
        started = await start_session(ws, "s-10k")
        assert started.pop("limits")["maxEventBytes"] == server.config.max_event_bytes
        assert started == {"sessionId": "s-10k", "nextSeq": 0, "nextIndex": 0}
        acked = await send_batches(ws, "s-10k", events, batch=50, window=8)
    assert sorted(acked) == list(range(200))
    assert await read_all_events(server, "s-10k") == events
    meta = await get_json(server, "/sessions/s-10k")
    assert meta["eventCount"] == 10_000
    assert meta["userId"] == "user-42"
    assert meta["viewport"] == {"width": 1440, "height": 900, "devicePixelRatio": 2}
    assert meta["live"] is True


async def test_websockets_client_streams_and_ends_a_session(server) -> None:
    events = list(session_events(500, seed=3))

    def run_client() -> list[dict]:
        replies = []
        with connect(ws_url(server)) as ws:
            ws.send(start_message("s-sync"))
            replies.append(json.loads(ws.recv(timeout=10)))
            for seq in range(10):
                ws.send(batch_message("s-sync", seq, events[seq * 50 : seq * 50 + 50]).decode())
            for _ in range(10):
                replies.append(json.loads(ws.recv(timeout=10)))
            ws.send(json.dumps({"type": "session_end", "data": {"sessionId": "s-sync"}}))
            replies.append(json.loads(ws.recv(timeout=10)))
        return replies

    replies = await trio.to_thread.run_sync(run_client)
    assert replies[0]["type"] == "session_started"
    assert [r["data"]["seq"] for r in replies[1:11]] == list(range(10))
    assert replies[-1] == {"type": "session_ended", "data": {"sessionId": "s-sync"}}
    meta = await get_json(server, "/sessions/s-sync")
    assert (meta["status"], meta["live"], meta["eventCount"]) == ("ended", False, 500)
    assert meta["endedAt"] is not None
    assert await read_all_events(server, "s-sync") == events
    active = await get_json(server, "/sessions/active")
    assert "s-sync" not in [s["sessionId"] for s in active["sessions"]]


async def test_restart_keeps_events_and_resumes_seqs(start_server) -> None:
    events = list(session_events(600, seed=11))
    first = await start_server()
    async with open_websocket_url(ws_url(first)) as ws:
        await start_session(ws, "persist")
        await send_batches(ws, "persist", events[:400])
    await stop(first)

    second = await start_server()
    assert await read_all_events(second, "persist") == events[:400]
    async with open_websocket_url(ws_url(second)) as ws:
        resumed = await start_session(ws, "persist")
        del resumed["limits"]  # test_snapshot_missing.py checks them
        assert resumed == {"sessionId": "persist", "nextSeq": 8, "nextIndex": 400}
        # A tracker that did not see the last acks resends seq 7: no duplicate.
        await ws.send_message(batch_message("persist", 7, events[350:400]).decode())
        assert (await recv_json(ws))["data"]["seq"] == 7
        await send_batches(ws, "persist", events[400:], first_seq=8)
    assert await read_all_events(second, "persist") == events


async def test_graceful_shutdown_closes_with_1001_and_keeps_acked_batches(start_server) -> None:
    events = list(session_events(1000, seed=2))
    server = await start_server(batch_interval=60_000, batch_size=100_000)

    def run_client() -> int | None:
        with connect(ws_url(server)) as ws:
            ws.send(start_message("drain"))
            ws.recv(timeout=10)
            for seq in range(20):
                ws.send(batch_message("drain", seq, events[seq * 50 : seq * 50 + 50]).decode())
            acks = [json.loads(ws.recv(timeout=10)) for _ in range(20)]
            assert [a["data"]["seq"] for a in acks] == list(range(20))
            # Nothing is flushed yet (huge interval): shutting down must write it.
            trio.from_thread.run_sync(server.shutdown)
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=10)
            return ws.close_code

    assert await trio.to_thread.run_sync(run_client) == 1001
    with trio.fail_after(10):
        await server.stopped.wait()
    again = await start_server()
    assert await read_all_events(again, "drain") == events


async def test_idle_session_ends_and_stays_readable(start_server) -> None:
    server = await start_server(session_idle_timeout=0.3, idle_sweep_interval=0.05)
    events = list(session_events(60, seed=9))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "idle")
        await send_batches(ws, "idle", events)
        with trio.fail_after(5):
            while "default:idle" in server.hub.live:  # noqa: ASYNC110 - observable state, bounded wait
                await trio.sleep(0.05)
        await ws.send_message(batch_message("idle", 2, events[:1]).decode())
        reply = await recv_json(ws)
        assert reply["type"] == "error" and reply["data"]["code"] == "unknown_session"
    meta = await get_json(server, "/sessions/idle")
    assert meta["status"] == "ended"
    assert await read_all_events(server, "idle") == events


async def test_backpressure_when_storage_lags_loses_nothing(start_server) -> None:
    # With room for one chunk only, every batch waits for the previous flush:
    # acks slow down, memory does not grow, and every batch is stored once.
    server = await start_server(max_pending_bytes=1, batch_interval=60_000)
    events = list(session_events(2000, seed=13))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "slow")
        acked = await send_batches(ws, "slow", events, window=16)
    assert sorted(acked) == list(range(40))
    assert server.writer.stats.flushes >= 39
    assert await read_all_events(server, "slow") == events
