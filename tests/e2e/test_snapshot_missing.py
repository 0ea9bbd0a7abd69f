"""A page whose full snapshot cannot be delivered: the limits a tracker
learns from ``session_started``, its ``snapshot_missing`` notice, and how the
session then says so (``snapshotMissing``, ``GET /sessions/{id}/errors``,
``replaywire_snapshots_missing_total``). See docs/protocol.md."""

from __future__ import annotations

import json
from typing import Any

from trio_websocket import WebSocketConnection, open_websocket_url

from auth.tenants import ACME_READ, BETA_READ, open_tracker, start
from e2e.clients import get_json, http, metric, recv_json, start_session, ws_url
from e2e.storages import database_url  # noqa: F401  (runs every test on each backend)
from replaywire import Server
from rrweb import batch_message, session_events

NOTICE = {"sessionId": "s1", "reason": "too_large", "bytes": 71_600_000, "limitBytes": 67_108_864}
MESSAGE = (
    "the page's full snapshot of 71.6 MB is over the limit of 64 MiB;"
    " the session records incremental events without it"
)


def notice(**data: Any) -> str:
    return json.dumps({"type": "snapshot_missing", "data": data})


async def ack_of(ws: WebSocketConnection, session_id: str, seq: int, events: list[bytes]) -> None:
    """Send one batch; the very next answer must be its ack (so nothing was
    answered to whatever was sent before it)."""
    await ws.send_message(batch_message(session_id, seq, events).decode())
    reply = await recv_json(ws)
    assert reply == {"type": "ack", "data": {"sessionId": session_id, "seq": seq}}, reply


async def test_session_started_tells_the_limits_the_server_enforces(start_server: Any) -> None:
    server = await start_server(
        max_event_bytes=100_000, max_message_bytes=150_000, max_events_per_batch=77
    )
    async with open_websocket_url(ws_url(server)) as ws:
        started = await start_session(ws, "s1")
    assert started["limits"] == {
        "maxEventBytes": 100_000,
        "maxMessageBytes": 150_000,
        "maxEventsPerBatch": 77,
    }


async def test_a_notice_flags_the_session_records_an_error_and_counts(server: Server) -> None:
    events = list(session_events(20, seed=5))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "s1")
        await ack_of(ws, "s1", 0, events[:10])
        await ws.send_message(notice(**NOTICE))
        await ack_of(ws, "s1", 1, events[10:])  # no answer to the notice came first

        live = await get_json(server, "/sessions/s1")
        missing = live["snapshotMissing"]
        assert {k: missing[k] for k in ("reason", "bytes", "limitBytes")} == {
            "reason": "too_large",
            "bytes": 71_600_000,
            "limitBytes": 67_108_864,
        }
        assert missing["at"].endswith("Z") and missing["at"] >= live["startedAt"]
        assert live["eventCount"] == 20  # incremental events go on being stored

        # A later notice replaces the first; sessionId may be left out when
        # the connection has one session.
        await ws.send_message(notice(reason="too_large", bytes=80_000_000, limitBytes=None))
        await ack_of(ws, "s1", 2, [])
    await server.hub.writer.flush()

    stored = await get_json(server, "/sessions/s1")
    assert stored["snapshotMissing"]["bytes"] == 80_000_000
    assert stored["snapshotMissing"]["limitBytes"] is None
    (listed,) = (await get_json(server, "/sessions"))["sessions"]
    assert listed["snapshotMissing"] == stored["snapshotMissing"]

    errors = await get_json(server, "/sessions/s1/errors")
    assert errors["sessionId"] == "s1"
    assert [(e["code"], e["message"], e["seq"]) for e in errors["errors"]] == [
        (
            "snapshot_too_large",
            "the page's full snapshot of 80.0 MB is too large;"
            " the session records incremental events without it",
            None,
        ),
        ("snapshot_too_large", MESSAGE, None),
    ]
    assert errors["errors"][0]["at"] >= errors["errors"][1]["at"]
    assert await metric(server, "replaywire_snapshots_missing_total", reason="too_large") == 2
    assert (
        await metric(server, "replaywire_messages_total", kind="tracker", type="snapshot_missing")
        == 2
    )


async def test_a_session_without_a_notice_has_no_flag(server: Server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "s1")
        await ack_of(ws, "s1", 0, list(session_events(5, seed=1)))
    await server.hub.writer.flush()
    assert (await get_json(server, "/sessions/s1"))["snapshotMissing"] is None
    assert (await get_json(server, "/sessions/s1/errors"))["errors"] == []


async def test_an_unknown_reason_is_kept_and_counted_as_other(server: Server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "s1")
        await ws.send_message(notice(sessionId="s1", reason="quota.v2", bytes=5000))
        await ack_of(ws, "s1", 0, [])
    await server.hub.writer.flush()
    assert (await get_json(server, "/sessions/s1"))["snapshotMissing"]["reason"] == "quota.v2"
    (error,) = (await get_json(server, "/sessions/s1/errors"))["errors"]
    assert error["code"] == "snapshot_missing"
    assert "5.0 kB" in error["message"] and "quota.v2" in error["message"]
    assert await metric(server, "replaywire_snapshots_missing_total", reason="other") == 1


async def test_bad_notices_are_answered_and_change_nothing(server: Server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "s1")
        for bad in [
            notice(sessionId="s1", reason="too large", bytes=1),
            notice(sessionId="s1", reason="r" * 65, bytes=1),
            notice(sessionId="s1", reason="too_large", bytes=-1),
            notice(sessionId="s1", reason="too_large", bytes=1.5),
            notice(sessionId="s1", reason="too_large"),
            notice(sessionId="s1", bytes=1),
            json.dumps({"type": "snapshot_missing", "data": ["too_large"]}),
        ]:
            await ws.send_message(bad)
            reply = await recv_json(ws)
            assert reply["type"] == "error", (bad, reply)
            assert reply["data"]["code"] == "invalid_message", (bad, reply)
        await ws.send_message(notice(sessionId="other", reason="too_large", bytes=1))
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "unknown_session", reply
    await server.hub.writer.flush()
    assert (await get_json(server, "/sessions/s1"))["snapshotMissing"] is None
    assert await metric(server, "replaywire_protocol_errors_total", code="invalid_message") == 7
    assert await metric(server, "replaywire_snapshots_missing_total", reason="too_large") == 0


async def test_a_notice_on_a_connection_without_the_session_is_refused(server: Server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "s1")
    async with open_websocket_url(ws_url(server)) as ws:  # started nothing
        await ws.send_message(notice(**NOTICE))
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "unknown_session", reply
    async with open_websocket_url(ws_url(server, "viewer")) as ws:
        await ws.send_message(notice(**NOTICE))
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "not_allowed", reply
    assert (await get_json(server, "/sessions/s1"))["snapshotMissing"] is None


async def test_errors_route_newest_first_with_limit(server: Server) -> None:
    events = list(session_events(10, seed=2))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "s1")
        await ack_of(ws, "s1", 0, events)
        bad_event = b'{"type":"x","timestamp":1}'
        await ws.send_message(batch_message("s1", 1, [bad_event]).decode())
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "invalid_event", reply
        await ws.send_message(notice(**NOTICE))
        await ack_of(ws, "s1", 1, [])
    await server.hub.writer.flush()

    every = (await get_json(server, "/sessions/s1/errors"))["errors"]
    assert [(e["code"], e["seq"]) for e in every] == [
        ("snapshot_too_large", None),
        ("invalid_event", 1),
    ]
    assert (await get_json(server, "/sessions/s1/errors?limit=1"))["errors"] == every[:1]
    assert (await get_json(server, "/sessions/s1/errors?limit=1000"))["errors"] == every
    assert (await get_json(server, "/sessions/s1/errors?limit="))["errors"] == every

    for query in ("limit=0", "limit=1001", "limit=ten", "limit=-1"):
        status, headers, body = await http(server, f"/sessions/s1/errors?{query}")
        assert status == 400, (query, body)
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "bad_parameter"
    status, _, body = await http(server, "/sessions/nope/errors")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "unknown_session"


async def test_errors_route_keeps_to_the_tenant(start_server: Any) -> None:
    server = await start(start_server)
    async with open_tracker(server, "acme") as ws:
        await start_session(ws, "s1")
        await ws.send_message(notice(**NOTICE))
        await ack_of(ws, "s1", 0, [])
    await server.hub.writer.flush()
    status, _, _ = await http(server, "/sessions/s1/errors")
    assert status == 401
    acme = {"Authorization": f"Bearer {ACME_READ}"}
    status, _, body = await http(server, "/sessions/s1/errors", headers=acme)
    assert status == 200
    assert [e["code"] for e in json.loads(body)["errors"]] == ["snapshot_too_large"]
    status, _, body = await http(
        server, "/sessions/s1/errors", headers={"Authorization": f"Bearer {BETA_READ}"}
    )
    assert status == 404, body
    assert json.loads(body)["error"]["code"] == "unknown_session"


async def test_with_durable_acks_the_notice_has_no_answer_either(start_server: Any) -> None:
    server = await start_server(ack_mode="durable")
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "s1")
        await ws.send_message(notice(**NOTICE))
        await ack_of(ws, "s1", 0, list(session_events(5, seed=3)))
    assert (await get_json(server, "/sessions/s1"))["snapshotMissing"]["reason"] == "too_large"
