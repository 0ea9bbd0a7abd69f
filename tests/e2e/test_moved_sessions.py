"""A session whose tracker reconnects to another instance (a page load
behind a load balancer that is not sticky), or opens a second connection. Two instances share one
PostgreSQL database and no Redis: the instance left behind must not go on
treating its ring as the session's tail. REST reads there return the whole
session, a resume there answers the true ``nextSeq``, and a viewer there
keeps receiving every event, once and in order.

Both instances run in the test, so their state can be waited on."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from e2e.clients import get_json, recv_json, start_session, ws_url
from replaywire import Server, _core
from rrweb import batch_message, session_events, start_message

StartServer = Callable[..., Any]
BATCH = 25
KEY = "default:{}"  # development mode: every session is the default tenant's


async def until(check: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not check():  # noqa: ASYNC110 - the state lives in other tasks
            await trio.sleep(0.01)


async def two_instances(
    start_server: StartServer,
    url: str,
    tmp_path: Path,
    *,
    a_config: dict[str, Any] | None = None,
    b_config: dict[str, Any] | None = None,
    **config: Any,
) -> tuple[Server, Server]:
    """Instances ``a`` and ``b`` on one database, with durable acks unless
    ``config`` says otherwise (``a_config`` and ``b_config``: each one's
    own); with ``redis_url``, once both listen to their channels."""
    common = {"database_url": url, "ack_mode": "durable", **config}
    a: Server = await start_server(
        instance_id="a", spool_dir=str(tmp_path / "a"), **common, **(a_config or {})
    )
    b: Server = await start_server(
        instance_id="b", spool_dir=str(tmp_path / "b"), **common, **(b_config or {})
    )
    if "redis_url" in config:
        await until(lambda: a.cluster.relay.subscribed and b.cluster.relay.subscribed)
    return a, b


async def send_range(
    server: Server, session_id: str, events: list[bytes], seqs: range, *, resume_at: int
) -> None:
    """One tracker connection to ``server``: start (checking the resume
    point), send the batches ``seqs``, each acked, then drop the connection
    without ``session_end`` (as a page load does)."""
    async with open_websocket_url(ws_url(server)) as ws:
        started = await start_session(ws, session_id)
        assert started["nextSeq"] == resume_at, started
        assert started["nextIndex"] == resume_at * BATCH, started
        for seq in seqs:
            part = events[seq * BATCH : (seq + 1) * BATCH]
            await ws.send_message(batch_message(session_id, seq, part).decode())
            reply = await recv_json(ws)
            assert reply["type"] == "ack" and reply["data"]["seq"] == seq, reply
    live = server.hub.live[KEY.format(session_id)]
    await until(lambda: not live.trackers)


async def all_events(server: Server, session_id: str) -> list[Any]:
    """Every event REST returns, page after page."""
    events: list[Any] = []
    while True:
        page = await get_json(
            server, f"/sessions/{session_id}/events?from_index={len(events)}&limit=400"
        )
        if not page["count"]:
            return events
        events += page["events"]


async def test_reads_and_resumes_follow_a_session_that_moved_and_came_back(
    start_server: StartServer, fresh_postgres_url: str, tmp_path: Path
) -> None:
    a, b = await two_instances(start_server, fresh_postgres_url, tmp_path)
    events = list(session_events(30 * BATCH, seed=7))
    expected = [json.loads(e) for e in events]

    await send_range(a, "m", events, range(10), resume_at=0)
    await send_range(b, "m", events, range(10, 20), resume_at=10)
    # A still holds the session live (no session_end came), with its first
    # half in the ring: its reads go to storage, where B wrote the rest.
    assert KEY.format("m") in a.hub.live
    assert await all_events(a, "m") == expected[: 20 * BATCH]
    # Back on A: the true resume point, not A's ring's.
    await send_range(a, "m", events, range(20, 30), resume_at=20)
    assert await all_events(b, "m") == expected
    assert await all_events(a, "m") == expected


async def test_a_viewer_stays_with_a_session_that_moved_to_another_instance(
    start_server: StartServer, fresh_postgres_url: str, tmp_path: Path
) -> None:
    a, b = await two_instances(start_server, fresh_postgres_url, tmp_path)
    events = list(session_events(24 * BATCH, seed=8))
    received: list[bytes] = []
    ended_at: list[int] = []

    async def watch() -> None:
        async with open_websocket_url(ws_url(a, "viewer")) as ws:
            join = {"type": "viewer_join_session", "data": {"sessionId": "v", "fromIndex": 0}}
            await ws.send_message(json.dumps(join))
            joined = await recv_json(ws)
            assert joined["type"] == "viewer_joined", joined
            with trio.fail_after(30):
                while True:
                    raw = await ws.get_message()
                    msg = json.loads(raw)
                    if msg["type"] == "session_ended":
                        ended_at.append(msg["data"]["nextIndex"])
                        return
                    if msg["type"] not in ("snapshot", "delta"):
                        continue
                    data = msg["data"]
                    assert data["firstIndex"] == len(received), (data["firstIndex"], len(received))
                    raw_bytes = raw.encode()
                    start = raw_bytes.index(b'"events":') + 9
                    part = _core.split_events(raw_bytes[start:-2])
                    assert len(part) == data["count"]
                    received.extend(part)

    async with trio.open_nursery() as nursery:
        await send_range(a, "v", events, range(8), resume_at=0)
        nursery.start_soon(watch)
        live = a.hub.live[KEY.format("v")]
        await until(lambda: live.viewers == 1)
        await send_range(b, "v", events, range(8, 16), resume_at=8)
        async with open_websocket_url(ws_url(b)) as ws:
            await start_session(ws, "v")
            for seq in range(16, 24):
                part = events[seq * BATCH : (seq + 1) * BATCH]
                await ws.send_message(batch_message("v", seq, part).decode())
                assert (await recv_json(ws))["type"] == "ack"
            await ws.send_message(json.dumps({"type": "session_end", "data": {"sessionId": "v"}}))
            assert (await recv_json(ws))["type"] == "session_ended"
    # Every event once, in order (each message continued where the last
    # ended), and the end as the tracker sent it on B.
    assert [json.loads(e) for e in received] == [json.loads(e) for e in events]
    assert ended_at == [len(events)]
    await until(lambda: KEY.format("v") not in a.hub.live)  # once its flush is done


class OlderConnection:
    """A tracker connection (the websockets client, in a thread) that
    starts ``session_id`` on ``server``, sends its first five batches, then
    waits to be closed: ``closed`` gets the close code and reason."""

    def __init__(self, server: Server, session_id: str, events: list[bytes]) -> None:
        self.server, self.session_id, self.events = server, session_id, events
        self.half_sent, self.taken_over = trio.Event(), trio.Event()
        self.closed: list[tuple[int | None, str | None]] = []

    def run(self) -> None:
        sid = self.session_id
        with connect(ws_url(self.server)) as ws:
            ws.send(start_message(sid))
            assert json.loads(ws.recv(timeout=10))["type"] == "session_started"
            for seq in range(5):
                part = self.events[seq * BATCH : (seq + 1) * BATCH]
                ws.send(batch_message(sid, seq, part).decode())
                assert json.loads(ws.recv(timeout=10))["type"] == "ack"
            trio.from_thread.run_sync(self.half_sent.set)
            try:
                ws.recv(timeout=10)
            except ConnectionClosed as exc:
                assert exc.rcvd is not None
                self.closed.append((exc.rcvd.code, exc.rcvd.reason))
            trio.from_thread.run_sync(self.taken_over.set)


async def test_a_newer_connection_takes_a_session_over_and_the_older_is_closed(
    start_server: StartServer, fresh_postgres_url: str, tmp_path: Path
) -> None:
    # A duplicated tab, or a reconnect that races the old socket's close:
    # two live connections of one session on one instance.
    a, _ = await two_instances(start_server, fresh_postgres_url, tmp_path)
    events = list(session_events(10 * BATCH, seed=9))
    older = OlderConnection(a, "t", events)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, older.run))
        await older.half_sent.wait()
        async with open_websocket_url(ws_url(a)) as newer:
            started = await start_session(newer, "t")
            assert started["nextSeq"] == 5
            with trio.fail_after(10):
                await older.taken_over.wait()
            assert older.closed == [(4409, "session_taken_over")]
            for seq in range(5, 10):
                part = events[seq * BATCH : (seq + 1) * BATCH]
                await newer.send_message(batch_message("t", seq, part).decode())
                assert (await recv_json(newer))["type"] == "ack"
            assert len(a.hub.live[KEY.format("t")].trackers) == 1
    assert await all_events(a, "t") == [json.loads(e) for e in events]


async def test_with_redis_a_start_on_another_instance_takes_the_session_over(
    start_server: StartServer,
    fresh_postgres_url: str,
    tmp_path: Path,
    redis_config: dict[str, str],
) -> None:
    # Two tabs of one session on two instances: the newer connection's
    # instance claims the session through Redis, and the older instance
    # closes its connection (4409) and reads storage from then on.
    a, b = await two_instances(start_server, fresh_postgres_url, tmp_path, **redis_config)
    events = list(session_events(10 * BATCH, seed=10))
    older = OlderConnection(a, "r", events)  # on A
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, older.run))
        await older.half_sent.wait()
        await send_range(b, "r", events, range(5, 10), resume_at=5)
        with trio.fail_after(10):
            await older.taken_over.wait()
    assert older.closed == [(4409, "session_taken_over")]
    held = a.hub.live[KEY.format("r")]
    assert not held.trackers and held.epoch == b.hub.live[KEY.format("r")].epoch == 2
    assert await all_events(a, "r") == [json.loads(e) for e in events]


async def test_with_redis_a_resume_elsewhere_covers_what_was_acked_on_receipt(
    start_server: StartServer,
    fresh_postgres_url: str,
    tmp_path: Path,
    redis_config: dict[str, str],
) -> None:
    # Acks on receipt, and an instance that would keep its batches a minute
    # before it writes them: a tracker moving on to another instance must
    # still be told the true resume point (the first instance stores what
    # it acked when the second takes the session), and storage holds every
    # batch once.
    a, b = await two_instances(
        start_server,
        fresh_postgres_url,
        tmp_path,
        a_config={"batch_interval": 60_000},
        ack_mode="received",
        **redis_config,
    )
    events = list(session_events(16 * BATCH, seed=13))
    key = KEY.format("q")

    await send_range(a, "q", events, range(8), resume_at=0)
    assert len(a.hub.writer.pending_chunks(key)) == 8  # acked, not stored
    await send_range(b, "q", events, range(8, 16), resume_at=8)
    assert await all_events(b, "q") == [json.loads(e) for e in events]
    await until(lambda: not b.hub.writer.pending_chunks(key))
    stored = await trio.to_thread.run_sync(b.hub.storage.read_chunks, key, 0, 10_000)
    assert [c.seq for c in stored] == list(range(16))
    assert all(c.first_index == c.seq * BATCH and c.event_count == BATCH for c in stored)
