"""Presence across instances, and Redis going away and coming back.

Instance A is a real process (so it can be SIGKILLed), B runs in the test.
Both share Redis under the test's own key prefix."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

import services
from e2e.clients import get_json, http, recv_json, start_session, ws_url
from e2e.processes import ServerProcess
from replaywire import Server
from rrweb import batch_message, session_events

StartServer = Callable[..., Any]
INTERVAL, TTL = 0.2, 1.0  # the documented bound: gone within TTL of the last heartbeat


async def active_ids(server: Server) -> set[str]:
    data = await get_json(server, "/sessions/active")
    return {s["sessionId"] for s in data["sessions"]}


async def test_a_session_on_a_shows_on_b_and_vanishes_when_a_is_killed(
    start_server: StartServer, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    presence = {"redis_url": redis_url, "redis_prefix": redis_prefix}
    a = ServerProcess(
        tmp_path,
        "a",
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        INSTANCE_ID="a",
        PRESENCE_INTERVAL=str(INTERVAL),
        PRESENCE_TTL=str(TTL),
        DATABASE_URL="memory://",
        SPOOL_DIR=str(tmp_path / "spool-a"),
    )
    port = await trio.to_thread.run_sync(a.start)
    try:
        b: Server = await start_server(
            instance_id="b", presence_interval=INTERVAL, presence_ttl=TTL, **presence
        )
        url = f"ws://127.0.0.1:{port}/ws?type=tracker"
        # A session stays live after its tracker disconnects (until session_end
        # or SESSION_IDLE_TIMEOUT), so A's tracker can leave before A is killed.
        async with open_websocket_url(url) as tracker_a:
            await start_session(tracker_a, "on-a")
            await tracker_a.send_message(batch_message("on-a", 0, list(session_events(5))).decode())
            assert (await recv_json(tracker_a))["type"] == "ack"
        async with open_websocket_url(ws_url(b)) as tracker_b:
            await start_session(tracker_b, "on-b")
            with trio.fail_after(5):
                while await active_ids(b) != {"on-a", "on-b"}:  # noqa: ASYNC110 - polling B
                    await trio.sleep(INTERVAL / 2)
            data = await get_json(b, "/sessions/active")
            assert data["count"] == 2 and data["instances"] == ["a", "b"] and data["complete"]
            on_a = next(s for s in data["sessions"] if s["sessionId"] == "on-a")
            assert on_a["instance"] == "a" and on_a["eventCount"] == 5
            stats = await get_json(b, "/stats")
            assert stats["cluster"]["sessions"] == 2 and stats["cluster"]["redis"] is True

            await trio.to_thread.run_sync(a.kill)
            killed = time.monotonic()
            with trio.fail_after(TTL + 5):
                while "on-a" in await active_ids(b):  # noqa: ASYNC110 - polling B
                    await trio.sleep(0.05)
            gone_after = time.monotonic() - killed
            # At most TTL after A's last heartbeat, which was before the kill.
            assert gone_after <= TTL + 0.5, gone_after
            assert await active_ids(b) == {"on-b"}
    finally:
        if a.proc is not None and a.proc.poll() is None:
            await trio.to_thread.run_sync(a.kill)


def redis_up(text: bytes) -> float:
    found = re.search(rb"^replaywire_redis_up (\S+)$", text, re.M)
    assert found is not None
    return float(found.group(1))


async def wait_redis_up(server: Server, value: float) -> None:
    with trio.fail_after(15):
        while redis_up((await http(server, "/metrics"))[2]) != value:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_ingest_goes_on_while_redis_is_down_and_redis_comes_back(
    start_server: StartServer, throwaway_redis: services.ThrowawayRedis
) -> None:
    server: Server = await start_server(
        redis_url=throwaway_redis.url,
        redis_sync_interval=20,
        presence_interval=INTERVAL,
        presence_ttl=TTL,
        limit_events_per_session=1000,
        rate_limit_window=86_400.0,
    )
    await wait_redis_up(server, 1)
    events = list(session_events(400))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "outage")
        throwaway_redis.stop()
        for seq in range(8):  # ingest never waits for Redis
            await ws.send_message(
                batch_message("outage", seq, events[seq * 50 : seq * 50 + 50]).decode()
            )
            with trio.fail_after(2):
                assert (await recv_json(ws))["type"] == "ack"
        await wait_redis_up(server, 0)
        data = await get_json(server, "/sessions/active")
        assert data["complete"] is False and data["count"] == 1  # this instance only
        # Limits go on locally: 400 counted, 600 left of 1000.
        await ws.send_message(batch_message("outage", 8, events[:50] * 13).decode())
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "rate_limited", reply

        await trio.to_thread.run_sync(throwaway_redis.start)
        await wait_redis_up(server, 1)
        # The increments counted during the outage reached Redis.
        with trio.fail_after(5):
            while True:
                keys = await trio.to_thread.run_sync(_session_counter, throwaway_redis.url)
                if keys == 400:
                    break
                await trio.sleep(0.05)


def _session_counter(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        total = 0
        for key in client.scan_iter(match="replaywire:{t:default}:rl:session_events:*"):
            total += int(client.get(key) or 0)
        return total
    finally:
        client.close()
