"""Interchangeable instances: a tracker that lands on another instance every
few batches (a page load behind a balancer that is not sticky), round-robin
over three real ``replaywire serve`` processes sharing one PostgreSQL
database and one Redis, or a Redis Cluster, with a viewer on each instance.
Every resume answers the true ``nextSeq``; every viewer gets every event
once, in order, without a resync, and the end; REST on every instance
returns the whole session; storage holds each batch once, with contiguous
indices.

Nothing here looks inside a server: the test waits on what an operator or a
client can see (``/health/ready``, ``/metrics``, pub/sub delivery, the
messages themselves) and reads storage with psycopg."""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from redis.cluster import RedisCluster
from trio_websocket import WebSocketConnection, open_websocket_url

import services
from e2e.clients import events_of, recv_json, start_session
from e2e.processes import ServerProcess
from replaywire import _core
from replaywire.client import EventsMessage, decode_message
from replaywire.redis.link import connect
from rrweb import batch_message, session_events

BATCH, BATCHES, PER_VISIT = 25, 60, 4
SESSION, KEY = "rr", "default:rr"  # development mode: the default tenant's
# One viewer per instance, each with its own codec: the relayed zstd bytes
# as they are, and the re-framing for text and deflate viewers.
INSTANCES = {"a": "zstd", "b": "none", "c": "deflate"}
INTERVAL, TTL = 0.2, 2.0
WAIT = 15  # seconds any one condition below may take before the test fails
RUN = 120  # seconds the whole tracker run may take, viewers done


# -- the services and the processes ------------------------------------------------


@pytest.fixture(params=["single", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(REDIS_URL, REDIS_PREFIX): the run's Redis, or the throwaway cluster
    of three masters, under a key prefix of this test's own."""
    if request.param == "single":
        yield request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        return
    cluster: services.ThrowawayRedisCluster = request.getfixturevalue("redis_cluster")
    prefix = f"rwtest:{os.getpid()}:{secrets.token_hex(4)}:"
    yield cluster.url, prefix
    services.delete_cluster_prefix(cluster, prefix)


def _stop(proc: ServerProcess) -> None:
    """SIGTERM; SIGKILL if it does not exit in time (teardown never hangs)."""
    try:
        proc.stop()
    except Exception:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()


@pytest.fixture
def instances(
    tmp_path: Path, fresh_postgres_url: str, redis_target: tuple[str, str]
) -> Iterator[list[ServerProcess]]:
    """Three ``replaywire serve`` processes, started together (their
    migrations meet on PostgreSQL's advisory lock) and stopped at the end
    whatever happened."""
    redis_url, prefix = redis_target
    procs = [
        ServerProcess(
            tmp_path,
            name,
            INSTANCE_ID=name,
            DATABASE_URL=fresh_postgres_url,
            ACK_MODE="durable",
            REDIS_URL=redis_url,
            REDIS_PREFIX=prefix,
            PRESENCE_INTERVAL=str(INTERVAL),
            PRESENCE_TTL=str(TTL),
            BATCH_INTERVAL="20",
            SPOOL_DIR=str(tmp_path / f"spool-{name}"),
        )
        for name in INSTANCES
    ]
    try:
        with ThreadPoolExecutor(len(procs)) as pool:
            for started in [pool.submit(proc.start) for proc in procs]:
                started.result()
        yield procs
    finally:
        for proc in procs:
            _stop(proc)
        print(logs(procs))  # shown with a failure's report


def name_of(proc: ServerProcess) -> str:
    return proc.log_path.stem


def logs(procs: list[ServerProcess]) -> str:
    """The last lines of every log, for failure messages."""
    return "\n".join(f"--- {name_of(p)}:\n{p.tail(30)}" for p in procs)


# -- what a client or an operator sees ----------------------------------------------


async def http_get(proc: ServerProcess, path: str) -> tuple[int, bytes]:
    def call() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(proc.url(path), timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    return await trio.to_thread.run_sync(call)


async def metric(proc: ServerProcess, name: str, **labels: str) -> float:
    """One sample of ``GET /metrics`` (0 while it is not there)."""
    status, body = await http_get(proc, "/metrics")
    assert status == 200, (name_of(proc), status, body[:200])
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


async def until_metric(procs: list[ServerProcess], name: str, value: float, **labels: str) -> None:
    """Until ``name`` is ``value`` on every instance."""
    seen: dict[str, float] = {}
    with trio.move_on_after(WAIT):
        while True:
            seen = {name_of(p): await metric(p, name, **labels) for p in procs}
            if all(v == value for v in seen.values()):
                return
            await trio.sleep(0.05)
    raise AssertionError(f"{name}{labels} not {value} within {WAIT} s: {seen}\n{logs(procs)}")


async def all_ready(procs: list[ServerProcess]) -> None:
    """Until ``/health/ready`` says ``ok`` everywhere: storage reachable and
    Redis answering (``degraded``, ``redis_unreachable``, until it does)."""
    health: dict[str, Any] = {}
    with trio.move_on_after(WAIT):
        while True:
            health = {}
            for proc in procs:
                _, body = await http_get(proc, "/health/ready")
                health[name_of(proc)] = json.loads(body)
            if all(h["status"] == "ok" for h in health.values()):
                return
            await trio.sleep(0.05)
    raise AssertionError(f"not ready within {WAIT} s: {health}\n{logs(procs)}")


async def subscribers_listening(procs: list[ServerProcess], redis_url: str, prefix: str) -> None:
    """Until every instance's pub/sub subscriber receives: a probe on the
    ownership channel (``{fanout}:owner``, docs/configuration.md) naming no
    session, which the instances ignore, published until each counts it in
    ``replaywire_relay_messages_total{direction="received"}``. A viewer that
    joined before its instance subscribed would be replayed the stored part
    and ended, not followed live."""
    client: Any = connect(redis_url, cluster=False)  # redis+cluster:// names a cluster
    channel = prefix + "{fanout}:owner"
    name, labels = "replaywire_relay_messages_total", {"direction": "received"}
    counts: dict[str, float] = {}
    try:
        with trio.move_on_after(WAIT):
            while True:
                if isinstance(client, RedisCluster):
                    await trio.to_thread.run_sync(client.spublish, channel, b"0 probe -")
                else:
                    await trio.to_thread.run_sync(client.publish, channel, b"0 probe -")
                counts = {name_of(p): await metric(p, name, **labels) for p in procs}
                if all(counts.values()):
                    return
                await trio.sleep(0.05)
        raise AssertionError(f"a subscriber missed the probe for {WAIT} s: {counts}")
    finally:
        client.close()


class Viewer:
    """One viewer (a trio-websocket client) on one instance: joins from
    index 0 and checks every events message as it comes."""

    def __init__(self, proc: ServerProcess, codec: str, events: list[bytes]) -> None:
        self.proc, self.codec, self.expected = proc, codec, events
        self.name = name_of(proc)
        self.live_at: int | None = None  # viewer_joined's nextIndex (None: replayed)
        self.next_index = 0
        self.messages = 0
        self.ended_at: int | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        url = f"ws://127.0.0.1:{self.proc.port}/ws?type=viewer&codec={self.codec}"
        async with open_websocket_url(url) as ws:
            join = {"type": "viewer_join_session", "data": {"sessionId": SESSION, "fromIndex": 0}}
            await ws.send_message(json.dumps(join))
            joined = await recv_json(ws)
            assert joined["type"] == "viewer_joined", (self.name, joined)
            self.live_at = joined["data"]["nextIndex"]
            # Followed live, not replayed from storage and ended at once.
            assert self.live_at is not None, (self.name, joined)
            task_status.started()
            while self.ended_at is None:
                with trio.move_on_after(WAIT) as waited:
                    frame = await ws.get_message()
                if waited.cancelled_caught:
                    raise AssertionError(f"viewer on {self.name}: nothing for {WAIT} s")
                self.take(frame)

    def take(self, frame: bytes | str) -> None:
        msg = decode_message(frame)
        where = f"viewer on {self.name} ({self.codec}) at {self.next_index}"
        if not isinstance(msg, EventsMessage):
            assert msg["type"] == "session_ended", (where, msg)
            self.ended_at = msg["data"]["nextIndex"]
            return
        assert not msg.resync, f"{where}: a resync snapshot from {msg.first_index}"
        if not self.messages:
            assert msg.type == "snapshot", (where, msg.type)
        # Each message starts where the last one ended: no gap, no repeat.
        assert msg.first_index == self.next_index, (where, msg.type, msg.first_index)
        want = self.expected[msg.first_index : msg.next_index]
        assert len(want) == msg.count, (where, msg.count, len(want))
        if msg.codec == "none":  # text frames: compared parsed
            assert msg.events() == [json.loads(e) for e in want], where
        else:  # byte for byte what the tracker sent
            assert msg.events_json == b"[" + b",".join(want) + b"]", where
        self.messages += 1
        self.next_index = msg.next_index


async def send_acked(ws: WebSocketConnection, events: list[bytes], seq: int, where: str) -> None:
    part = events[seq * BATCH : (seq + 1) * BATCH]
    await ws.send_message(batch_message(SESSION, seq, part).decode())
    reply = await recv_json(ws)
    assert reply["type"] == "ack" and reply["data"]["seq"] == seq, (where, reply)


async def rest_events(proc: ServerProcess) -> list[bytes]:
    """Every event ``GET /sessions/{id}/events`` returns, page after page
    (``nextIndex`` as the next ``from_index``), raw."""
    events: list[bytes] = []
    while True:
        path = f"/sessions/{SESSION}/events?from_index={len(events)}&limit=400"
        status, body = await http_get(proc, path)
        assert status == 200, (name_of(proc), path, status, body[:300])
        page = json.loads(body)
        assert page["fromIndex"] == len(events), (name_of(proc), path, page["fromIndex"])
        if not page["count"]:
            return events
        raw = events_of(body)
        assert len(raw) == page["count"] and page["nextIndex"] == len(events) + len(raw)
        events += raw


def stored_chunks(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT seq, first_index, last_index, event_count, codec, payload FROM chunks"
            " WHERE session_id = %s ORDER BY first_index, seq",
            (KEY,),
        ).fetchall()


# -- the test -------------------------------------------------------------------------


async def test_a_tracker_moving_round_robin_over_three_instances_loses_nothing(
    instances: list[ServerProcess], redis_target: tuple[str, str], fresh_postgres_url: str
) -> None:
    await all_ready(instances)
    await subscribers_listening(instances, *redis_target)
    events = list(session_events(BATCHES * BATCH, seed=11))
    viewers = [
        Viewer(p, codec, events) for p, codec in zip(instances, INSTANCES.values(), strict=True)
    ]

    with trio.move_on_after(RUN) as run:
        async with trio.open_nursery() as nursery:
            for visit, first in enumerate(range(0, BATCHES, PER_VISIT)):
                proc = instances[visit % len(instances)]
                where = f"visit {visit} on {name_of(proc)}"
                async with open_websocket_url(f"ws://127.0.0.1:{proc.port}/ws?type=tracker") as ws:
                    started = await start_session(ws, SESSION)
                    assert started["nextSeq"] == first, (where, started)
                    assert started["nextIndex"] == first * BATCH, (where, started)
                    for seq in range(first, first + PER_VISIT):
                        await send_acked(ws, events, seq, where)
                    if visit == 0:
                        # A viewer on every instance while the tracker is
                        # on A: A's own, and B's and C's through the relay.
                        for viewer in viewers:
                            with trio.fail_after(WAIT):
                                await nursery.start(viewer.run)
                        await until_metric(instances, "replaywire_viewers_active", 1)
                    if first + PER_VISIT == BATCHES:
                        end = {"type": "session_end", "data": {"sessionId": SESSION}}
                        await ws.send_message(json.dumps(end))
                        assert (await recv_json(ws))["type"] == "session_ended", where
    if run.cancelled_caught:
        at = {v.name: (v.next_index, v.ended_at) for v in viewers}
        raise AssertionError(f"not done within {RUN} s; viewers (index, end): {at}")

    for viewer in viewers:
        assert viewer.ended_at == len(events), (viewer.name, viewer.ended_at)
        assert viewer.next_index == len(events), (viewer.name, viewer.next_index)
    for proc in instances:
        assert await rest_events(proc) == events, name_of(proc)
    rows = await trio.to_thread.run_sync(stored_chunks, fresh_postgres_url)
    assert [row[0] for row in rows] == list(range(BATCHES)), [row[0] for row in rows]
    for seq, first_index, last_index, count, codec, payload in rows:
        assert (first_index, last_index, count) == (seq * BATCH, (seq + 1) * BATCH - 1, BATCH)
        want = b"[" + b",".join(events[seq * BATCH : (seq + 1) * BATCH]) + b"]"
        if codec != "none":  # the array's contents, compressed
            payload = b"[" + _core.decompress(codec, payload, 1 << 24) + b"]"
        assert payload == want, (seq, codec)
    # The viewers are counted out where they were counted in.
    await until_metric(instances, "replaywire_viewers_active", 0)

    for proc in instances:
        code = await trio.to_thread.run_sync(proc.stop)
        assert code == 0, (name_of(proc), code, proc.tail())
        errors = [line for line in proc.log_lines() if line.get("level") in ("error", "critical")]
        assert not errors, (name_of(proc), errors)
