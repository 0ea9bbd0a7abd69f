"""Live fan-out across instances over Redis: a viewer on B watches a session
whose tracker is connected to A. Both share one Redis (under the test's own
prefix) and one fresh PostgreSQL database, as a deployment would.

A is a real process; B runs in the test, so its state can be inspected."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

import services
from e2e.clients import get_json, http, recv_json, start_session
from e2e.processes import ServerProcess
from replaywire import Server
from replaywire.client import EventsMessage, decode_message
from rrweb import batch_message, session_events

StartServer = Callable[..., Any]
INTERVAL, TTL = 0.2, 1.0
BATCH = 40


async def until(check: Callable[[], bool]) -> None:
    """Poll another instance's (or a client's) state until ``check()``."""
    with trio.fail_after(10):
        while not check():  # noqa: ASYNC110 - the state lives in other tasks and processes
            await trio.sleep(0.01)


def viewer_url(server_port: int, codec: str) -> str:
    return f"ws://127.0.0.1:{server_port}/ws?type=viewer&codec={codec}"


class Collected:
    """What one viewer received: every events message in order, checked for
    continuity; a resync snapshot restarts the stream (as a client would)."""

    def __init__(self, events: list[bytes]) -> None:
        self.expected = events
        self.next_index: int | None = None
        self.first_index: int | None = None
        self.resyncs = 0
        self.messages = 0
        self.ended_at: int | None = None

    def take(self, frame: bytes | str) -> None:
        msg = decode_message(frame)
        if not isinstance(msg, EventsMessage):
            if msg["type"] == "session_ended":
                self.ended_at = msg["data"]["nextIndex"]
            return
        self.messages += 1
        if msg.type == "snapshot":
            if msg.resync:
                self.resyncs += 1
            if self.first_index is None:
                self.first_index = msg.first_index
        else:
            assert msg.first_index == self.next_index, (msg.first_index, self.next_index)
        # Byte for byte what the tracker sent for these indices.
        want = self.expected[msg.first_index : msg.next_index]
        if msg.codec == "none":  # text frames: compare parsed
            assert msg.events() == [json.loads(e) for e in want]
        else:
            assert msg.events_json == b"[" + b",".join(want) + b"]"
        self.next_index = msg.next_index


async def watch(port: int, session_id: str, codec: str, seen: Collected) -> None:
    async with open_websocket_url(viewer_url(port, codec)) as ws:
        join = {"type": "viewer_join_session", "data": {"sessionId": session_id}}
        await ws.send_message(json.dumps(join))
        joined = await recv_json(ws)
        assert joined["type"] == "viewer_joined", joined
        assert joined["data"]["nextIndex"] is not None, joined  # followed live, not replayed
        with trio.fail_after(60):
            while seen.ended_at is None:
                seen.take(await ws.get_message())


async def viewers_counted(server: Any, session_id: str, viewers: int) -> None:
    """Until ``GET /sessions/active`` and ``/stats`` on ``server`` count
    ``viewers`` of the session (heartbeats come every INTERVAL)."""
    with trio.fail_after(10):
        while True:
            active = await get_json(server, "/sessions/active")
            seen = [s["viewers"] for s in active["sessions"] if s["sessionId"] == session_id]
            stats = await get_json(server, "/stats")
            if seen == [viewers] and stats["cluster"]["viewers"] == viewers:
                return
            await trio.sleep(INTERVAL / 2)


async def send(ws: WebSocketConnection, session_id: str, events: list[bytes], seq: int) -> None:
    part = events[seq * BATCH : (seq + 1) * BATCH]
    await ws.send_message(batch_message(session_id, seq, part).decode())
    reply = await recv_json(ws)
    assert reply["type"] == "ack" and reply["data"]["seq"] == seq, reply


async def test_a_viewer_on_b_gets_every_event_of_a_session_on_a(
    start_server: StartServer,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    fresh_postgres_url: str,
) -> None:
    shared = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix}
    a = ServerProcess(
        tmp_path,
        "a",
        **shared,
        INSTANCE_ID="a",
        DATABASE_URL=fresh_postgres_url,
        PRESENCE_INTERVAL=str(INTERVAL),
        PRESENCE_TTL=str(TTL),
        SPOOL_DIR=str(tmp_path / "spool-a"),
    )
    port_a = await trio.to_thread.run_sync(a.start)
    try:
        b: Server = await start_server(
            instance_id="b",
            database_url=fresh_postgres_url,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            presence_interval=INTERVAL,
            presence_ttl=TTL,
        )
        events = list(session_events(1200, checkout_every=500))
        batches = len(events) // BATCH
        early = {codec: Collected(events) for codec in ("zstd", "none")}
        late = Collected(events)
        async with (
            open_websocket_url(f"ws://127.0.0.1:{port_a}/ws?type=tracker") as tracker,
            trio.open_nursery() as nursery,
        ):
            await start_session(tracker, "x")
            await send(tracker, "x", events, 0)
            for codec, seen in early.items():
                nursery.start_soon(watch, b.port, "x", codec, seen)
            remotes = b.cluster.relay.remotes
            key = "default:x"  # sessions are keyed by tenant (development mode: default)
            await until(lambda: key in remotes and len(remotes[key].feeds) == 2)  # joined
            remote = remotes[key]
            # Presence counts B's two viewers with the session, on both
            # instances, though A holds it and has none of its own.
            for server in (SimpleNamespace(port=port_a), b):
                await viewers_counted(server, "x", 2)
            for seq in range(1, batches // 2):
                await send(tracker, "x", events, seq)
                await trio.sleep(0.01)
            await until(lambda: remote.position >= (batches // 2) * BATCH)  # 500 went by
            # A late joiner (deflate) starts from the latest full snapshot (500).
            nursery.start_soon(watch, b.port, "x", "deflate", late)
            for seq in range(batches // 2, batches):
                await send(tracker, "x", events, seq)
                await trio.sleep(0.01)
            await tracker.send_message(
                json.dumps({"type": "session_end", "data": {"sessionId": "x"}})
            )
            assert (await recv_json(tracker))["type"] == "session_ended"
        for seen in [*early.values(), late]:
            assert seen.ended_at == len(events) and seen.next_index == len(events)
            assert seen.resyncs == 0
        assert early["zstd"].first_index == 0 and late.first_index == 500
        # One relayed delta per tick, not one per viewer; B forgot the session.
        assert b.cluster.relay.remotes == {}
        assert remote.ticks >= 2
    finally:
        if a.proc is not None and a.proc.poll() is None:
            await trio.to_thread.run_sync(a.stop)


async def test_redis_outage_keeps_ingest_and_fan_out_resumes_without_a_gap(
    start_server: StartServer,
    throwaway_redis: services.ThrowawayRedis,
    fresh_postgres_url: str,
) -> None:
    common = {
        "database_url": fresh_postgres_url,
        "redis_url": throwaway_redis.url,
        "presence_interval": INTERVAL,
        "presence_ttl": TTL,
        "redis_sync_interval": 20,
    }
    a: Server = await start_server(instance_id="a", **common)
    b: Server = await start_server(instance_id="b", spool_dir="", **common)
    events = list(session_events(1200, checkout_every=400))
    batches = len(events) // BATCH
    seen = Collected(events)
    async with (
        open_websocket_url(f"ws://127.0.0.1:{a.port}/ws?type=tracker") as tracker,
        trio.open_nursery() as nursery,
    ):
        await start_session(tracker, "o")
        await send(tracker, "o", events, 0)
        nursery.start_soon(watch, b.port, "o", "zstd", seen)
        remotes = b.cluster.relay.remotes
        await until(lambda: "default:o" in remotes and len(remotes["default:o"].feeds) == 1)
        for seq in range(1, 10):
            await send(tracker, "o", events, seq)
        await until(lambda: seen.next_index == 10 * BATCH)

        await trio.to_thread.run_sync(throwaway_redis.stop)
        for seq in range(10, 20):  # ingest does not wait for Redis
            with trio.fail_after(5):
                await send(tracker, "o", events, seq)
        for server in (a, b):
            with trio.fail_after(10):
                while True:
                    status, _, body = await http(server, "/health/ready")
                    health = json.loads(body)
                    if health["status"] == "degraded":
                        break
                    await trio.sleep(0.05)
            assert status == 200 and health["reasons"] == ["redis_unreachable"], health
        assert seen.next_index == 10 * BATCH  # nothing crossed meanwhile

        await trio.to_thread.run_sync(throwaway_redis.start)
        for server in (a, b):
            with trio.fail_after(15):
                while (await get_json(server, "/health/ready"))["status"] != "ok":  # noqa: ASYNC110
                    await trio.sleep(0.05)
        for seq in range(20, batches):
            await send(tracker, "o", events, seq)
            await trio.sleep(0.01)
        await tracker.send_message(json.dumps({"type": "session_end", "data": {"sessionId": "o"}}))
        assert (await recv_json(tracker))["type"] == "session_ended"
    # Once B heard from A again, it sent the viewer what the outage held
    # back, read from storage, and the viewer followed to the end: every
    # event once, in order, without a resync.
    assert seen.resyncs == 0 and seen.first_index == 0
    assert seen.ended_at == len(events) and seen.next_index == len(events)
