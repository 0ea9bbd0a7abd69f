"""replaywire's real server with its tracker handler swapped for an echo,
the peer the Autobahn fuzzing client tests.

Everything up to the handler is the server's own: the listener, the HTTP
upgrade and its permessage-deflate negotiation, the shipped size limits
and the :class:`~replaywire.ws.WebSocket` (Rust codec) or
:class:`~replaywire.ws.wsproto_backend.WsprotoWebSocket` object of the
configured ``WS_BACKEND``. Only ``/ws?type=tracker`` answers each message
with itself instead of speaking the tracker protocol.

Resource handling: :func:`echo_server` starts the server in the caller's
nursery and shuts it down (gracefully, waiting for it) on the way out; the
tracker handler is swapped back on the way out too, also on error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

import replaywire.app
from replaywire import Config, Server
from replaywire.ws import WebSocket
from replaywire.ws.messages import TOO_LARGE


async def echo(ws: WebSocket, server: object, who: object) -> None:
    """Sends every data message back as it came (text as text, binary as
    binary). A message over ``MAX_MESSAGE_BYTES`` cannot be echoed: 1009."""
    while True:
        for message in await ws.receive():
            if isinstance(message, TOO_LARGE):
                await ws.close(1009, "message too big to echo")
                return
            await ws.send(ws.encode_message(message.data, binary=not message.is_text))


@asynccontextmanager
async def echo_server(
    nursery: trio.Nursery, tmp_path: Path, ws_backend: str
) -> AsyncIterator[Server]:
    """A server on a free loopback port whose trackers are echoed."""
    config = Config(
        host="127.0.0.1",
        port=0,
        database_url=f"sqlite:///{tmp_path / 'replaywire.db'}",
        spool_dir=str(tmp_path / "spool"),
        log_level="warning",
        ws_backend=ws_backend,
    )
    tracker = replaywire.app.serve_tracker
    replaywire.app.serve_tracker = echo  # type: ignore[assignment]
    try:
        server = Server(config)
        await nursery.start(server.run)
        try:
            yield server
        finally:
            server.shutdown()
            await server.stopped.wait()
    finally:
        replaywire.app.serve_tracker = tracker
