"""While storage is down, batches go to the spool and are acked; once the
spool is full, a tracker gets a retryable ``storage_unavailable`` error for
the refused batch (never a silent drop) and readiness says so; once storage
is back, the resent batch is acked and everything is stored exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from trio_websocket import open_websocket_url

from conftest import make_config
from e2e.clients import http, recv_json, start_session, ws_url
from replaywire import Server
from rrweb import batch_message, session_events
from storage.factories import FaultyStorage


async def test_full_spool_refuses_with_retry_after_then_recovers(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    storage = FaultyStorage(tmp_path / "rw.db", fail_first=10**9)  # down
    events = list(session_events(400, seed=5))
    batches = [events[i : i + 50] for i in range(0, 400, 50)]
    budget = sum(len(e) for e in events[:150]) + 3000  # about three batches
    config = make_config(tmp_path, spool_max_bytes=budget, batch_interval=5, storage_codec="none")
    server = Server(config, storage=storage)
    await nursery.start(server.run)

    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "full")
        seq, refused = 0, None
        while refused is None:
            await ws.send_message(batch_message("full", seq, batches[seq]).decode())
            reply = await recv_json(ws)
            if reply["type"] == "ack":
                assert reply["data"]["seq"] == seq
                seq += 1
            else:
                refused = reply["data"]
        assert 1 <= seq < len(batches)
        assert refused["code"] == "storage_unavailable" and refused["seq"] == seq
        assert refused["retryAfterMs"] > 0

        status, _, body = await http(server, "/health/ready")
        health = json.loads(body)
        assert status == 503 and health["status"] == "unavailable", health
        assert health["storage"]["spooling"] and health["storage"]["spoolFull"]

        storage.fail_first = 0  # the database is back
        with trio.fail_after(30):
            while server.writer.stats.spooling:  # noqa: ASYNC110 (polling a server's state)
                await trio.sleep(0.02)
        for resend in range(seq, len(batches)):
            await ws.send_message(batch_message("full", resend, batches[resend]).decode())
            assert (await recv_json(ws))["data"] == {"sessionId": "full", "seq": resend}

    status, _, body = await http(server, "/health/ready")
    assert (status, json.loads(body)["status"]) == (200, "ok")
    stored = await server.writer.read(storage.read_chunks, "default:full", 0, 10_000)
    assert [c.seq for c in stored] == list(range(len(batches)))
    assert server.metrics.protocol_errors_total.labels("storage_unavailable")._value.get() == 1
    server.shutdown()
    await server.stopped.wait()
