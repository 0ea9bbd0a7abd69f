"""Redis Cluster: instances sharing a throwaway cluster of three masters
(``redis_cluster``, started from the installed ``redis-server``) share live
fan-out (sharded pub/sub), rate limits and presence as they do through a
single Redis; and the keys used together hash to one slot."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from redis.client import Redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from trio_websocket import open_websocket_url

import services
from e2e.clients import get_json, recv_json, start_session, ws_url
from e2e.processes import ServerProcess
from e2e.test_cluster_fanout import BATCH, Collected, send, until, watch
from e2e.test_rate_limits import own_storage, share_a_session_limit
from replaywire import Server
from replaywire.config import Config, ConfigError
from replaywire.limits.sync import _groups, concurrency_key, window_key
from replaywire.redis import RedisLink
from replaywire.redis.link import client_url
from rrweb import session_events

StartServer = Callable[..., Any]
INTERVAL, TTL = 0.2, 1.0


@pytest.fixture
def cluster_prefix(redis_cluster: services.ThrowawayRedisCluster) -> Iterator[str]:
    """A key prefix of this test's own on the cluster, deleted afterwards."""
    prefix = f"rwtest:{secrets.token_hex(4)}:"
    yield prefix
    services.delete_cluster_prefix(redis_cluster, prefix)


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def subscribers(cluster: services.ThrowawayRedisCluster, channel: str) -> tuple[int, int]:
    """Subscribers of ``channel`` over every node: sharded, then plain."""
    sharded = plain = 0
    for port in cluster.ports:
        node = Redis(host="127.0.0.1", port=port)
        try:
            sharded += sum(n for _, n in node.pubsub_shardnumsub(channel))
            plain += sum(n for _, n in node.pubsub_numsub(channel))
        finally:
            node.close()
    return sharded, plain


# -- keys and configuration (no cluster needed) ---------------------------------


def test_keys_used_together_hash_to_one_slot() -> None:
    link = RedisLink("redis+cluster://127.0.0.1:1", prefix="replaywire:", instance="a")
    assert link.cluster  # the client is only made by the first call
    # One tenant's session counters, over sessions and windows.
    tenant = {window_key(link, "session_events", start, f"acme:s{i}") for i in range(50)
              for start in (0, 10_000, 20_000)}  # fmt: skip
    assert len({slot(k) for k in tenant}) == 1
    assert next(iter(tenant)).startswith("replaywire:{t:acme}:rl:session_events:")
    # One IP's connection windows and concurrency leases.
    ip = [window_key(link, "connections", s, "10.0.0.7") for s in (0, 10_000)]
    assert len({slot(k) for k in [*ip, concurrency_key(link, "10.0.0.7")]}) == 1
    # Presence of every instance: one slot, so a read is one MGET.
    from replaywire.redis.presence import _instances, _key

    presence = [_key(link, f"i{n}") for n in range(20)] + [_instances(link)]
    assert len({slot(k) for k in presence}) == 1
    # A session's channel is in its own key's slot, braces in its id or not.
    for session in ("acme:s1", "acme:we{ird}", "acme:}x{"):
        channel = link.tagged(session, "fanout")
        assert slot(channel) == slot(link.tagged(session, "other")), session
    assert link.tagged("acme:s1", "fanout") == "replaywire:{acme:s1}:fanout"
    # Calls are grouped by slot: each group's keys share one.
    keys = [window_key(link, "session_events", 0, f"t{i}:s") for i in range(30)]
    conc = [concurrency_key(link, f"10.0.0.{i}") for i in range(30)]
    for windows, ips in _groups(link, keys, conc):
        assert len({slot(keys[i]) for i in windows} | {slot(conc[i]) for i in ips}) == 1


def test_cluster_urls_and_the_knob() -> None:
    assert client_url("redis+cluster://h:7000/0", False) == ("redis://h:7000/0", True)
    assert client_url("rediss+cluster://h:7000", False) == ("rediss://h:7000", True)
    assert client_url("redis://h:7000", True) == ("redis://h:7000", True)
    assert client_url("redis://h:6379", False) == ("redis://h:6379", False)
    Config(redis_url="redis+cluster://127.0.0.1:7000")
    Config(redis_url="redis://127.0.0.1:7000", redis_cluster=True)
    with pytest.raises(ConfigError, match="REDIS_CLUSTER needs"):
        Config(redis_url="unix:///run/redis.sock", redis_cluster=True)
    with pytest.raises(ConfigError, match="expected redis://"):
        Config(redis_url="cluster://127.0.0.1:7000")


# -- instances sharing a real cluster ------------------------------------------


async def followed_live(port: int, session_id: str) -> None:
    """Return once a viewer joining ``session_id`` on ``port`` would follow it
    live. A holder that has just started may not have subscribed to the
    wants yet (its cluster client first asks for the slot map); a viewer
    joining before then is served from storage instead."""
    join = {"type": "viewer_join_session", "data": {"sessionId": session_id}}
    with trio.fail_after(10):
        while True:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/ws?type=viewer") as ws:
                await ws.send_message(json.dumps(join))
                joined = await recv_json(ws)
            if joined["data"]["nextIndex"] is not None:
                return
            await trio.sleep(0.1)


async def test_a_viewer_on_b_gets_every_event_sent_to_a_once_and_in_order(
    start_server: StartServer,
    tmp_path: Path,
    redis_cluster: services.ThrowawayRedisCluster,
    cluster_prefix: str,
    fresh_postgres_url: str,
) -> None:
    a = ServerProcess(
        tmp_path,
        "a",
        REDIS_URL=redis_cluster.url,  # redis+cluster://
        REDIS_PREFIX=cluster_prefix,
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
            redis_url=redis_cluster.node_url,  # a plain URL of another node
            redis_cluster=True,
            redis_prefix=cluster_prefix,
            presence_interval=INTERVAL,
            presence_ttl=TTL,
        )
        assert b.cluster.link is not None and b.cluster.link.cluster
        events = list(session_events(600, checkout_every=300))
        batches = len(events) // BATCH
        seen = Collected(events)
        async with (
            open_websocket_url(f"ws://127.0.0.1:{port_a}/ws?type=tracker") as tracker,
            trio.open_nursery() as nursery,
        ):
            await start_session(tracker, "c")
            await send(tracker, "c", events, 0)
            await followed_live(b.port, "c")
            nursery.start_soon(watch, b.port, "c", "zstd", seen)
            remotes = b.cluster.relay.remotes
            await until(lambda: "default:c" in remotes and len(remotes["default:c"].feeds) == 1)
            remote = remotes["default:c"]
            # Sharded pub/sub: B on the session's channel, A and B on the wants.
            channel = b.cluster.relay.session_channel("default:c")
            assert subscribers(redis_cluster, channel) == (1, 0)
            assert subscribers(redis_cluster, b.cluster.relay.want_channel) == (2, 0)
            for seq in range(1, batches):
                await send(tracker, "c", events, seq)
                await trio.sleep(0.01)
            await tracker.send_message(
                json.dumps({"type": "session_end", "data": {"sessionId": "c"}})
            )
            assert (await recv_json(tracker))["type"] == "session_ended"
        # Every event once, in order (Collected checks each message's
        # first index against the last one's end), with no resync.
        assert seen.first_index == 0 and seen.resyncs == 0
        assert seen.ended_at == len(events) and seen.next_index == len(events)
        assert remote.ticks >= 2 and b.cluster.relay.remotes == {}
    finally:
        if a.proc is not None and a.proc.poll() is None:
            await trio.to_thread.run_sync(a.stop)


async def test_a_session_limit_is_shared_through_the_cluster(
    start_server: StartServer,
    tmp_path: Path,
    redis_cluster: services.ThrowawayRedisCluster,
    cluster_prefix: str,
) -> None:
    # As through a single Redis: 60 events on A, 30 on B before B knew the
    # session, then both refuse more.
    await share_a_session_limit(start_server, tmp_path, redis_cluster.url, cluster_prefix)
    # The counter is on the cluster, under the tenant's tag.
    client = RedisCluster.from_url(redis_cluster.node_url)
    try:
        keys = list(client.scan_iter(match=cluster_prefix + "{t:default}:rl:session_events:*"))
        assert [int(client.get(k) or 0) for k in keys] == [90]
    finally:
        client.close()


async def test_presence_is_counted_through_the_cluster(
    start_server: StartServer,
    tmp_path: Path,
    redis_cluster: services.ThrowawayRedisCluster,
    cluster_prefix: str,
) -> None:
    shared = {
        "redis_url": redis_cluster.url,
        "redis_prefix": cluster_prefix,
        "presence_interval": INTERVAL,
        "presence_ttl": TTL,
    }
    a: Server = await start_server(instance_id="a", **shared)
    b: Server = await start_server(instance_id="b", **own_storage(tmp_path, "b"), **shared)
    async with open_websocket_url(ws_url(a)) as on_a, open_websocket_url(ws_url(b)) as on_b:
        await start_session(on_a, "on-a")
        await start_session(on_b, "on-b")
        for server, other in ((a, "b"), (b, "a")):  # each sees the other's heartbeat
            with trio.fail_after(5):
                while True:
                    data = await get_json(server, "/sessions/active")
                    if {s["sessionId"] for s in data["sessions"]} == {"on-a", "on-b"}:
                        break
                    await trio.sleep(INTERVAL / 2)
            assert data["count"] == 2 and data["instances"] == ["a", "b"] and data["complete"]
            theirs = next(s for s in data["sessions"] if s["sessionId"] == f"on-{other}")
            assert theirs["instance"] == other
            stats = await get_json(server, "/stats")
            assert stats["cluster"]["redis"] is True and stats["cluster"]["sessions"] == 2
