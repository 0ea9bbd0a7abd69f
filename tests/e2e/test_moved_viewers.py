"""Viewers on the instance a session left, with Redis: they go on through
the relay from the session's new holder, from where they were, with no
snapshot, no gap and no duplicate, and come back to the local broadcaster
when the session does. The new holder flushes slowly here, so that what
the viewer receives before storage has it can only have come through the
relay; REST on the instance left behind still returns all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

from e2e.clients import recv_json, start_session, ws_url
from e2e.test_moved_sessions import BATCH, KEY, StartServer, all_events, two_instances, until
from replaywire import Server, _core
from rrweb import batch_message, session_events

SLOW_FLUSH_MS = 4000  # the new holder's BATCH_INTERVAL: longer than the relay takes


class Viewer:
    """A viewer on one instance that checks every message continues where
    the previous one ended, and keeps what it received."""

    def __init__(self, server: Server, session_id: str) -> None:
        self.server = server
        self.session_id = session_id
        self.events: list[bytes] = []
        self.resyncs = 0
        self.ended_at: int | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_websocket_url(ws_url(self.server, "viewer")) as ws:
            join = {
                "type": "viewer_join_session",
                "data": {"sessionId": self.session_id, "fromIndex": 0},
            }
            await ws.send_message(json.dumps(join))
            assert (await recv_json(ws))["type"] == "viewer_joined"
            task_status.started()
            with trio.fail_after(60):
                while self.ended_at is None:
                    self._take(await ws.get_message())

    def _take(self, raw: str | bytes) -> None:
        assert isinstance(raw, str)
        msg: dict[str, Any] = json.loads(raw)
        if msg["type"] == "session_ended":
            self.ended_at = msg["data"]["nextIndex"]
            return
        if msg["type"] not in ("snapshot", "delta"):
            return
        data = msg["data"]
        assert data["firstIndex"] == len(self.events), (data, len(self.events))
        self.resyncs += bool(data.get("resync"))
        raw_bytes = raw.encode()
        start = raw_bytes.index(b'"events":') + 9
        part = _core.split_events(raw_bytes[start:-2])
        assert len(part) == data["count"]
        self.events.extend(part)


async def send_visit(
    server: Server, session_id: str, events: list[bytes], seqs: range, *, end: bool = False
) -> None:
    """One page load on ``server``: start (the resume point must be the
    first of ``seqs``), send ``seqs``, each acked, then leave (or end)."""
    async with open_websocket_url(ws_url(server)) as ws:
        started = await start_session(ws, session_id)
        assert started["nextSeq"] == seqs.start, started
        for seq in seqs:
            part = events[seq * BATCH : (seq + 1) * BATCH]
            await ws.send_message(batch_message(session_id, seq, part).decode())
            reply = await recv_json(ws)
            assert reply["type"] == "ack" and reply["data"]["seq"] == seq, reply
        if end:
            await ws.send_message(
                json.dumps({"type": "session_end", "data": {"sessionId": session_id}})
            )
            assert (await recv_json(ws))["type"] == "session_ended"


async def stored_chunks(server: Server, key: str) -> int:
    chunks = await trio.to_thread.run_sync(server.hub.storage.read_chunks, key, 0, 1_000_000)
    return len(chunks)


async def test_viewers_left_behind_follow_the_relay_and_come_back(
    start_server: StartServer,
    fresh_postgres_url: str,
    tmp_path: Path,
    redis_config: dict[str, str],
) -> None:
    a, b = await two_instances(
        start_server,
        fresh_postgres_url,
        tmp_path,
        b_config={"batch_interval": SLOW_FLUSH_MS},
        ack_mode="received",
        **redis_config,
        presence_interval=0.2,
        presence_ttl=2.0,
    )
    key = KEY.format("h")
    events = list(session_events(24 * BATCH, seed=12))
    viewer = Viewer(a, "h")

    async with trio.open_nursery() as nursery:
        await send_visit(a, "h", events, range(8))
        await nursery.start(viewer.run)
        await until(lambda: len(viewer.events) == 8 * BATCH)
        await until(lambda: not a.hub.writer.pending_chunks(key))  # B resumes from storage

        # The session moves to B, which keeps its batches for seconds before
        # it writes them: A's viewer gets them through the relay.
        await send_visit(b, "h", events, range(8, 16))
        await until(lambda: len(viewer.events) == 16 * BATCH)
        assert await stored_chunks(a, key) == 8  # B's are not stored yet
        assert a.hub.live[key].viewers == 0 and a.cluster.relay.watching() == {key: 1}
        # REST on A waits for B's batches to be stored rather than stop short.
        assert await all_events(a, "h") == [json.loads(e) for e in events[: 16 * BATCH]]

        # Back on A: the viewer follows A's broadcaster again.
        await send_visit(a, "h", events, range(16, 24), end=True)

    assert [json.loads(e) for e in viewer.events] == [json.loads(e) for e in events]
    assert viewer.ended_at == len(events)
    assert viewer.resyncs == 0
