"""Probes: /health/live answers while the process serves, /health/ready
says 503 with the reasons when the server should get no traffic."""

from __future__ import annotations

import json

from trio_websocket import open_websocket_url

from e2e.clients import http, recv_json, start_session, ws_url
from replaywire import Server
from rrweb import batch_message, session_events


async def get(server: Server, path: str) -> tuple[int, dict]:
    status, headers, body = await http(server, path, headers={"X-Request-ID": "probe-1"})
    assert headers["x-request-id"] == "probe-1"
    return status, json.loads(body)


async def test_ready_lists_no_reasons_when_ready(server: Server) -> None:
    assert await get(server, "/health/live") == (200, {"status": "alive"})
    status, ready = await get(server, "/health/ready")
    assert (status, ready["status"], ready["reasons"]) == (200, "ok", [])
    assert ready["memory"]["pendingBudget"] == server.config.max_pending_bytes
    status, full = await get(server, "/health")
    assert status == 200 and full["storage"]["ok"] and full["memory"]["bufferBytes"] == 0


async def test_storage_backlog_over_budget_is_not_ready(start_server) -> None:  # type: ignore[no-untyped-def]
    # Nothing flushes on its own; received acks so the batch is acked at once.
    server = await start_server(
        ack_mode="received", batch_interval=600_000, batch_size=1_000_000, max_pending_bytes=1000
    )
    events = list(session_events(50, seed=5))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "b1")
        await ws.send_message(batch_message("b1", 0, events).decode())
        assert (await recv_json(ws))["type"] == "ack"
        status, ready = await get(server, "/health/ready")
        assert (status, ready["status"], ready["reasons"]) == (
            503,
            "unavailable",
            ["storage_backlog"],
        )
        assert ready["memory"]["pendingBytes"] >= 1000
        await server.writer.flush()
        status, ready = await get(server, "/health/ready")
        assert (status, ready["reasons"]) == (200, [])


async def test_draining_is_not_ready_at_once(server: Server) -> None:
    # Readiness must fail the moment shutdown is asked for, before anything
    # is closed; health() is what /health/ready answers with. (Closing
    # with 1001 is checked on real processes in test_ops_shutdown.py.)
    server.shutdown()
    health = await server.health()
    assert (health["status"], health["reasons"]) == ("unavailable", ["draining"])
    assert server.metrics.draining._value.get() == 1
