"""HEAD answers GET's status and headers, ``content-length`` included, and
sends no body (RFC 9110 section 9.3.2): for the tracker script, every other
static asset, and API routes whose body is sent in parts."""

from __future__ import annotations

import trio
from trio_websocket import open_websocket_url

from e2e.clients import http, send_batches, start_session, ws_url
from replaywire import Server
from replaywire.http import static
from rrweb import session_events


def asset_paths() -> list[str]:
    names = sorted(static.assets())
    assert "tracker.js" in names and "index.html" in names, names
    paths = {"tracker.js": "/tracker.js", "index.html": "/viewer"}
    return [paths.get(name, f"/viewer/{name}") for name in names]


async def head_then_get(server: Server, path: str) -> tuple[bytes, bytes]:
    """The raw bytes of ``HEAD path`` and ``GET /health/live`` pipelined on
    one connection, split where the second answer starts: a HEAD answer
    that carried a body would show it before the second status line."""
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(
            f"HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n"
            "GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head_end = data.index(b"\r\n\r\n") + 4
    return data[:head_end], data[head_end:]


def header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    raise AssertionError(f"no {name!r} in {head!r}")


async def test_head_of_every_static_asset_has_gets_length_and_no_body(server: Server) -> None:
    for path in asset_paths():
        status, get_headers, body = await http(server, path)
        assert status == 200, path
        assert int(get_headers["content-length"]) == len(body) > 0, path
        head, rest = await head_then_get(server, path)
        assert head.startswith(b"HTTP/1.1 200 "), (path, head)
        assert int(header(head, b"content-length")) == len(body), path
        assert header(head, b"etag") == get_headers["etag"].encode(), path
        assert rest.startswith(b"HTTP/1.1 200 "), (path, rest[:200])  # no body in between


async def test_head_of_an_event_page_sent_in_parts(server: Server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "s1")
        await send_batches(ws, "s1", list(session_events(40, seed=7)), batch=10)
    # identity: the page goes out as parts, never joined
    status, headers, body = await http(
        server, "/sessions/s1/events", headers={"Accept-Encoding": "identity"}
    )
    assert status == 200 and int(headers["content-length"]) == len(body)
    head, rest = await head_then_get(server, "/sessions/s1/events")
    assert int(header(head, b"content-length")) == len(body)
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:200]


async def test_head_of_a_missing_asset_is_a_404_with_its_length(server: Server) -> None:
    status, headers, body = await http(server, "/viewer/nope.js")
    assert status == 404
    head, _ = await head_then_get(server, "/viewer/nope.js")
    assert head.startswith(b"HTTP/1.1 404 ")
    assert int(header(head, b"content-length")) == len(body) == int(headers["content-length"])
