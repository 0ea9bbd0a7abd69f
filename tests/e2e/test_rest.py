"""The REST API answers with JSON, documented errors, and its OpenAPI file."""

from __future__ import annotations

import gzip
import io
import json

import zstandard
from trio_websocket import open_websocket_url

from e2e.clients import get_json, http, send_batches, start_session, ws_url
from e2e.storages import database_url  # noqa: F401  (runs every test on each backend)
from rrweb import session_events


async def test_root_health_and_openapi(server) -> None:
    root = await get_json(server, "/")
    assert root["name"] == "replaywire" and root["version"]
    assert (await get_json(server, "/health/live"))["status"] == "alive"
    ready = await get_json(server, "/health/ready")
    assert ready["status"] == "ok" and ready["storage"]["backend"] == server.storage.name
    assert (await get_json(server, "/health"))["status"] == "ok"
    spec = await get_json(server, "/openapi.json")
    assert spec["openapi"].startswith("3.")
    for path in (
        "/sessions/active",
        "/sessions/{session_id}/events",
        "/sessions/cleanup",
        "/stats",
    ):
        assert path in spec["paths"]


async def test_errors_are_json_with_codes(server) -> None:
    for path, method, status, code in [
        ("/nowhere", "GET", 404, "not_found"),
        ("/sessions/missing", "GET", 404, "unknown_session"),
        ("/sessions/missing/events", "GET", 404, "unknown_session"),
        ("/sessions/active", "POST", 405, "method_not_allowed"),
        # A path named literally is its route's only, as in OpenAPI: not
        # also /sessions/{session_id} (Allow names DELETE alone).
        ("/sessions/cleanup", "GET", 405, "method_not_allowed"),
        ("/sessions/active?limit=zero", "GET", 400, "bad_parameter"),
        ("/sessions/cleanup?idle_seconds=-1", "DELETE", 400, "bad_parameter"),
        ("/ws", "GET", 426, "upgrade_required"),
    ]:
        got, headers, body = await http(server, path, method)
        assert got == status, (path, got, body)
        assert json.loads(body)["error"]["code"] == code
        assert headers["content-type"] == "application/json"
        if status == 405:
            assert headers["allow"] == {"POST": "GET", "GET": "DELETE"}[method]


async def test_request_id_is_echoed_or_made(server) -> None:
    _, headers, _ = await http(server, "/", headers={"X-Request-ID": "abc-123"})
    assert headers["x-request-id"] == "abc-123"
    _, headers, _ = await http(server, "/")
    assert len(headers["x-request-id"]) == 32


async def test_sessions_active_stats_events_and_cleanup(server) -> None:
    events = list(session_events(120, seed=21))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "rest-1")
        await send_batches(ws, "rest-1", events)
        active = await get_json(server, "/sessions/active")
        assert active["count"] == 1
        assert active["sessions"][0]["sessionId"] == "rest-1"
        assert active["sessions"][0]["nextIndex"] == 120
        stats = await get_json(server, "/stats")
        assert stats["sessions"]["active"] == 1
        assert stats["buffers"]["events"] == 120
        page = await get_json(server, "/sessions/rest-1/events?from_index=10&limit=5")
        assert (page["fromIndex"], page["count"], page["nextIndex"]) == (10, 5, 15)
        assert page["events"] == [json.loads(e) for e in events[10:15]]
        status, _, _ = await http(server, "/sessions/rest-1/events?from_index=x")
        assert status == 400
        cleaned = json.loads((await http(server, "/sessions/cleanup?idle_seconds=0", "DELETE"))[2])
        assert cleaned == {"ended": ["rest-1"], "count": 1}
    assert (await get_json(server, "/sessions/active"))["count"] == 0
    assert (await get_json(server, "/sessions/rest-1"))["status"] == "ended"
    assert "replaywire_events_ingested_total 120.0" in (await http(server, "/metrics"))[2].decode()


async def test_events_page_honours_accept_encoding(server) -> None:
    events = list(session_events(1000, seed=4))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "enc")
        await send_batches(ws, "enc", events)
    path = "/sessions/enc/events?from_index=0&limit=1000"
    status, headers, plain = await http(server, path)
    assert status == 200 and "content-encoding" not in headers

    def unzstd(body: bytes) -> bytes:
        # The tracker left, so the page may come from storage: stored zstd
        # chunks between glue frames, which a decoder reads across.
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(body), read_across_frames=True
        )
        return reader.read()

    for accept, decode in (("zstd", unzstd), ("gzip", gzip.decompress)):
        status, headers, body = await http(server, path, headers={"Accept-Encoding": accept})
        assert status == 200 and headers["content-encoding"] == accept
        assert headers["vary"] == "Accept-Encoding"
        assert decode(body) == plain and len(body) * 3 < len(plain)


async def test_stored_zstd_chunks_are_served_without_recompressing(server) -> None:
    """An ended session is read from storage: a zstd client gets the stored
    chunks byte for byte between small glue frames, and any zstd decoder
    reading every frame gets the page a plain client gets."""
    events = list(session_events(600, seed=5))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "stored")
        await send_batches(ws, "stored", events, batch=40)
    await http(server, "/sessions/cleanup?idle_seconds=0", "DELETE")
    await server.hub.writer.flush()
    assert not server.hub.writer.pending_chunks("default:stored")
    stored = server.hub.storage.read_chunks("default:stored", 0, 1000)
    assert stored and all(chunk.codec == "zstd" for chunk in stored)
    for query in ("from_index=0&limit=1000", "from_index=13&limit=500"):
        path = f"/sessions/stored/events?{query}"
        _, _, plain = await http(server, path)
        status, headers, body = await http(server, path, headers={"Accept-Encoding": "zstd"})
        assert status == 200 and headers["content-encoding"] == "zstd"
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(body), read_across_frames=True
        )
        assert reader.read() == plain
        whole = [c for c in stored if c.first_index >= 13 and c.end_index <= 513]
        assert all(chunk.payload in body for chunk in whole)
