"""A deliberately minimal WebSocket client over a raw trio stream, for
sending what real client libraries refuse to send (unmasked frames,
invalid UTF-8, oversized frames, broken handshakes)."""

from __future__ import annotations

import base64
import json
import os

import trio

from replaywire import _core


async def handshake(
    port: int, target: str = "/ws?type=tracker", extra: bytes = b"", version: bytes = b"13"
) -> tuple[trio.SocketStream, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    await stream.send_all(
        b"GET %b HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %b\r\nSec-WebSocket-Version: %b\r\n%b\r\n"
        % (target.encode(), key, version, extra)
    )
    head = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            head += chunk
    return stream, head


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    return _core.encode_client_frame(opcode, payload, os.urandom(4), fin=fin, rsv=rsv)


async def read_close(stream: trio.SocketStream) -> tuple[int | None, list]:
    """Read until the server's close frame; return its code and the events before."""
    decoder = _core.FrameDecoder(require_mask=False)
    seen = []
    with trio.fail_after(5):
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return None, seen
            for event in decoder.feed(data):
                if isinstance(event, _core.WsClose):
                    return event.code, seen
                seen.append(event)


async def next_json(stream: trio.SocketStream, decoder: _core.FrameDecoder) -> dict:
    """The next data message from the server, parsed as JSON."""
    while True:
        for event in decoder.feed(await stream.receive_some(65536)):
            if isinstance(event, _core.WsMessage):
                return json.loads(event.data)  # type: ignore[no-any-return]
