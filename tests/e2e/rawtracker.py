"""A tracker on a raw socket (:mod:`e2e.rawws`) that writes bytes as given,
in as many writes as asked, and keeps every server frame in order: for
tests where how TCP splits the bytes is the point."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from e2e.rawws import client_frame, handshake
from replaywire import Server, _core
from rrweb import start_message


class RawTracker:
    """A tracker connection: raw writes, decoded server frames."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.decoder = _core.FrameDecoder(require_mask=False)
        self.events: list[Any] = []

    async def write(self, data: bytes, writes: int) -> None:
        """``data`` in ``writes`` pieces of about equal size. The pieces are
        separate TCP segments (trio turns Nagle off); the short pause
        between them only lets the server read each on its own, and what
        is tested must not depend on whether it does."""
        size = -(-len(data) // writes)
        for i in range(0, len(data), size):
            if i:
                await trio.sleep(0.02)  # a split, not a wait for anything
            try:
                await self.stream.send_all(data[i : i + size])
            except trio.BrokenResourceError:
                return  # closed after the close frame: the rest is moot

    async def next_event(self) -> Any:
        with trio.fail_after(10):
            while not self.events:
                data = await self.stream.receive_some(65536)
                assert data, "the server closed the TCP connection without a close frame"
                self.events.extend(self.decoder.feed(data))
        return self.events.pop(0)

    async def reply(self) -> dict[str, Any]:
        event = await self.next_event()
        assert isinstance(event, _core.WsMessage), event
        return json.loads(event.data)  # type: ignore[no-any-return]

    async def close_code(self) -> int | None:
        """The server's close frame (anything else first fails the test),
        then the end of the TCP stream."""
        event = await self.next_event()
        assert isinstance(event, _core.WsClose), event
        with trio.fail_after(10):
            while await self.stream.receive_some(65536):
                pass
        return event.code


@asynccontextmanager
async def open_tracker(server: Server, session_id: str) -> AsyncIterator[RawTracker]:
    """A tracker connection with ``session_id`` started; closed on the way out."""
    stream, head = await handshake(server.port)
    async with stream:
        assert head.startswith(b"HTTP/1.1 101"), head
        tracker = RawTracker(stream)
        await tracker.write(client_frame(_core.OP_TEXT, start_message(session_id).encode()), 1)
        assert (await tracker.reply())["type"] == "session_started"
        yield tracker
