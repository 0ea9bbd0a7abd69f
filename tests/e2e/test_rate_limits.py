"""Rate limits end to end: a tracker over its events limit is told when to
retry and loses nothing; connections over a connection limit get 429 before
the upgrade; two instances sharing Redis share a limit."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

from e2e.clients import events_of, http, recv_json, start_session, ws_url
from e2e.rawws import handshake
from replaywire import Server
from rrweb import batch_message, session_events

StartServer = Callable[..., Any]
DAY = 86_400.0  # a window no test straddles (by more than a negligible chance)


def own_storage(tmp_path: Path, name: str) -> dict[str, str]:
    """Database and spool of a second server in the same test."""
    return {
        "database_url": f"sqlite:///{tmp_path / name}.db",
        "spool_dir": str(tmp_path / f"spool-{name}"),
    }


def metric(text: bytes, name: str, labels: str = "") -> float:
    found = re.search(rb"^replaywire_%b%b (\S+)$" % (name.encode(), labels.encode()), text, re.M)
    assert found is not None, name
    return float(found.group(1))


async def test_tracker_over_the_events_limit_retries_after_the_hint_and_loses_nothing(
    start_server: StartServer,
) -> None:
    server: Server = await start_server(rate_limit_window=1.0, limit_events_per_tracker=100)
    events = list(session_events(180))
    batches = [events[i : i + 30] for i in range(0, 180, 30)]
    refusals: list[dict[str, Any]] = []
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "rl-1")
        for seq, part in enumerate(batches):
            while True:
                await ws.send_message(batch_message("rl-1", seq, part).decode())
                reply = await recv_json(ws)
                if reply["type"] == "ack":
                    assert reply["data"]["seq"] == seq
                    break
                assert reply["type"] == "error", reply
                data = reply["data"]
                assert data["code"] == "rate_limited" and data["seq"] == seq, data
                assert 0 < data["retryAfterMs"] <= 1000, data
                refusals.append(data)
                await trio.sleep(data["retryAfterMs"] / 1000)
    # 180 events at 100 per second: at least one refusal, and every event stored once.
    assert refusals
    status, _, body = await http(server, "/sessions/rl-1/events")
    assert status == 200
    assert events_of(body) == events
    _, _, text = await http(server, "/metrics")
    assert metric(text, "rate_limited_total", '{limit="events"}') == len(refusals)


async def test_messages_of_a_tracker_are_limited_too(start_server: StartServer) -> None:
    server: Server = await start_server(rate_limit_window=DAY, limit_messages_per_tracker=3)
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "rl-2")  # message 1
        for seq in range(2):  # messages 2 and 3
            await ws.send_message(
                batch_message("rl-2", seq, [b'{"type":3,"timestamp":1}']).decode()
            )
            assert (await recv_json(ws))["type"] == "ack"
        await ws.send_message(batch_message("rl-2", 2, [b'{"type":3,"timestamp":1}']).decode())
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "rate_limited" and reply["data"]["seq"] == 2


async def upgrade_status(port: int) -> int:
    """The status of a WebSocket upgrade (the connection is closed at once)."""
    stream, head = await handshake(port)
    await stream.aclose()
    return int(head.split(b" ", 2)[1])


async def refused_upgrade(port: int) -> tuple[int, dict[str, str], dict[str, Any]]:
    stream, head = await handshake(port)
    async with stream:
        body = b""
        with trio.fail_after(5):
            while True:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                body += chunk
    head_part, _, rest = (head + body).partition(b"\r\n\r\n")
    lines = head_part.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(rest) if rest else {}


async def test_concurrent_connections_over_the_limit_get_429_before_the_upgrade(
    start_server: StartServer,
) -> None:
    server: Server = await start_server(limit_concurrent_per_ip=2)
    async with open_websocket_url(ws_url(server)), open_websocket_url(ws_url(server, "viewer")):
        status, headers, body = await refused_upgrade(server.port)
        assert status == 429
        assert headers["retry-after"] == "1"
        assert body["error"]["code"] == "rate_limited"
    # Both closed: their places are free again.
    with trio.fail_after(5):
        while server.limiter.concurrent is not None and server.limiter.concurrent.local:  # noqa: ASYNC110 - server state, bounded wait
            await trio.sleep(0.01)
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "rl-3")
    _, _, text = await http(server, "/metrics")
    assert metric(text, "rate_limited_total", '{limit="concurrent"}') == 1


async def test_new_connections_per_ip_over_the_window_limit_get_429(
    start_server: StartServer,
) -> None:
    server: Server = await start_server(rate_limit_window=DAY, limit_connections_per_ip=3)
    for _ in range(3):
        async with open_websocket_url(ws_url(server)):
            pass
    status, headers, body = await refused_upgrade(server.port)
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert 1 <= int(headers["retry-after"]) <= DAY


async def test_two_instances_sharing_redis_share_the_limits(
    start_server: StartServer, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    shared = {
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "redis_sync_interval": 20,
        "rate_limit_window": DAY,
        "limit_connections_per_ip": 10,
        "limit_events_per_session": 100,
    }
    a: Server = await start_server(instance_id="a", **shared)
    b: Server = await start_server(instance_id="b", **own_storage(tmp_path, "b"), **shared)
    # New connections per IP, alternating between the instances, with a
    # complete sync of both in between (waited for, not slept: a loaded
    # machine may delay a sync): docs/configuration.md's bound allows no overshoot.
    admitted = 0
    for i in range(16):
        admitted += await upgrade_status((a, b)[i % 2].port) == 101
        for server in (a, b)[: min(i + 1, 2)]:  # each once it has counted something
            await synced(server)
    assert admitted == 10
    # A burst with no pause: at most the other instance's share on top,
    # never more than (N-1) x the limit. (All 10 are used up: none pass.)
    statuses = []
    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(_append, statuses, (a, b)[i % 2].port)
    assert all(s == 429 for s in statuses)


async def _append(out: list[int], port: int) -> None:
    out.append(await upgrade_status(port))


async def synced(server: Server) -> None:
    """Return after one complete sync of ``server`` with Redis."""
    assert server.cluster.sync is not None
    target = server.cluster.sync.syncs + 2  # the one in flight may predate us
    with trio.fail_after(5):
        while server.cluster.sync.syncs < target:  # noqa: ASYNC110 - server state, bounded wait
            await trio.sleep(0.005)


async def test_a_session_limit_is_shared_by_instances(
    start_server: StartServer, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    await share_a_session_limit(start_server, tmp_path, redis_url, redis_prefix)


async def share_a_session_limit(
    start_server: StartServer, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Two instances sharing ``redis_url`` (a single Redis or a cluster)
    enforce one session's limit together (also tests/redis/)."""
    shared = {
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "redis_sync_interval": 20,
        "rate_limit_window": DAY,
        "limit_events_per_session": 100,
    }
    a: Server = await start_server(instance_id="a", **shared)
    b: Server = await start_server(instance_id="b", **own_storage(tmp_path, "b"), **shared)
    events = list(session_events(60))

    async def send(ws: Any, seq: int, part: list[bytes]) -> dict[str, Any]:
        await ws.send_message(batch_message("shared-1", seq, part).decode())
        return await recv_json(ws)

    # The session's tracker sends 60 events on A, then, as after a reconnect
    # through a load balancer, a tracker sends to B. B has not seen the
    # session yet, so its first batch is admitted on its own view (the
    # documented overshoot: at most one sync interval's worth); after one
    # sync both instances know the session's total of 90 and refuse more.
    # Each page load is a new connection, here to A, then B, then A again
    # (two live connections of one session would take it from each other).
    async with open_websocket_url(ws_url(a)) as ws_a:
        await start_session(ws_a, "shared-1")
        assert (await send(ws_a, 0, events))["type"] == "ack"
        await synced(a)
    async with open_websocket_url(ws_url(b)) as ws_b:
        await start_session(ws_b, "shared-1")
        assert (await send(ws_b, 1, events[:30]))["type"] == "ack"
        await synced(b)
        await synced(a)
        reply = await send(ws_b, 2, events[:30])
        assert reply["type"] == "error", reply
        assert reply["data"]["code"] == "rate_limited" and reply["data"]["seq"] == 2
    async with open_websocket_url(ws_url(a)) as ws_a:
        await start_session(ws_a, "shared-1")
        reply = await send(ws_a, 2, events[:30])
        assert reply["type"] == "error", reply
        assert reply["data"]["code"] == "rate_limited" and reply["data"]["seq"] == 2
