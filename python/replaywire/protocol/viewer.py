"""The viewer side: ``viewer_join_session``, ``viewer_leave_session``,
``get_session_events``.

Each joined session is watched by its own task that *pulls* events: it
keeps the index of the next event to send, reads from the session's ring
buffer (or from storage, when it fell behind what memory still holds) and
sleeps on the session's ``changed`` event when it is up to date. So a viewer
never sees a gap or a duplicate, a slow viewer slows only itself (the socket
write blocks, nothing queues up), and memory per viewer is one message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .. import _core
from ..errors import ProtocolError
from ..sessions import LiveSession
from ..ws import ConnectionClosed, WebSocket
from . import frames

if TYPE_CHECKING:
    from ..app import Server


async def serve_viewer(ws: WebSocket, server: Server) -> None:
    """Serve one viewer connection until it closes (raises ConnectionClosed)."""
    watches: dict[str, trio.CancelScope] = {}
    closed: ConnectionClosed | None = None
    async with trio.open_nursery() as nursery:
        try:
            while True:
                for msg in await ws.receive():
                    reply = await _handle(ws, server, nursery, watches, msg)
                    if reply:
                        await ws.send(reply)
        except ConnectionClosed as exc:
            closed = exc
            nursery.cancel_scope.cancel()
    if closed is not None:
        raise closed


async def _handle(
    ws: WebSocket,
    server: Server,
    nursery: trio.Nursery,
    watches: dict[str, trio.CancelScope],
    msg: _core.WsMessage,
) -> bytes:
    metrics = server.metrics
    try:
        if not msg.is_text:
            raise ProtocolError("invalid_message", "viewer messages are JSON text frames")
        decoded = server.protocol.decode(msg.data)
        if isinstance(decoded, _core.ViewerJoin):
            metrics.messages_total.labels("viewer", "viewer_join_session").inc()
            sid = decoded.session_id
            if sid in watches:
                watches.pop(sid).cancel()
            watches[sid] = await nursery.start(_watch, ws, server, sid, decoded.from_index)
            return b""
        if isinstance(decoded, _core.ViewerLeave):
            metrics.messages_total.labels("viewer", "viewer_leave_session").inc()
            scope = watches.pop(decoded.session_id, None)
            if scope is not None:
                scope.cancel()
            return frames.message("viewer_left", {"sessionId": decoded.session_id})
        if isinstance(decoded, _core.GetSessionEvents):
            metrics.messages_total.labels("viewer", "get_session_events").inc()
            limit = min(
                decoded.limit or server.config.max_history_limit, server.config.max_history_limit
            )
            if await server.hub.get_record(decoded.session_id) is None:
                raise ProtocolError("unknown_session", f"no session {decoded.session_id!r}")
            page = await server.hub.history(decoded.session_id, decoded.from_index, limit)
            return frames.events(
                b"session_events",
                frames.json_string(decoded.session_id),
                page.first_index,
                page.count,
                page.events,
            )
        raise ProtocolError(
            "not_allowed", "tracker messages are not accepted on a viewer connection"
        )
    except (_core.MessageError, ProtocolError) as exc:
        metrics.protocol_errors_total.labels(exc.code).inc()
        server.warn_client("viewer_message_rejected", code=exc.code, message=exc.message)
        return frames.error(exc.code, exc.message, exc.seq)


async def _watch(
    ws: WebSocket,
    server: Server,
    session_id: str,
    from_index: int | None,
    *,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Send a session's events to one viewer from ``from_index`` (default:
    the latest full snapshot in memory) until it ends or the viewer leaves."""
    with trio.CancelScope() as scope:
        task_status.started(scope)
        hub = server.hub
        live = hub.live.get(session_id)
        if live is None and await hub.get_record(session_id) is None:
            await _send(ws, frames.error("unknown_session", f"no session {session_id!r}"))
            return
        start = from_index
        if start is None:
            start = 0
            if live is not None and not live.ended:
                keyframe = hub.buffers.keyframe_index(session_id)
                start = keyframe if keyframe is not None else hub.buffers.first_index(session_id)
        if live is not None:
            live.viewers += 1
            server.metrics.viewers_active.inc()
        try:
            await _pump(ws, server, session_id, live, start)
        finally:
            if live is not None:
                live.viewers -= 1
                server.metrics.viewers_active.dec()


async def _pump(
    ws: WebSocket, server: Server, session_id: str, live: LiveSession | None, index: int
) -> None:
    hub = server.hub
    config = server.config
    id_json = frames.json_string(session_id)
    next_index = hub.buffers.next_index(session_id) if live is not None and not live.ended else None
    if not await _send(
        ws,
        frames.message(
            "viewer_joined", {"sessionId": session_id, "fromIndex": index, "nextIndex": next_index}
        ),
    ):
        return
    kind = b"snapshot"
    while True:
        changed = live.changed if live is not None else None
        in_memory = (
            live is not None
            and not live.ended
            and session_id in hub.buffers
            and index >= hub.buffers.first_index(session_id)
        )
        if in_memory:
            part = hub.buffers.read(
                session_id, index, config.viewer_batch_events, config.viewer_batch_bytes
            )
            first, count, events = part.first_index, part.count, part.json()
        else:
            page = await hub.history(session_id, index, config.viewer_batch_events)
            first, count, events = page.first_index, page.count, page.events
        if count:
            frame = frames.events(kind, id_json, first, count, events)
            if not await _send(ws, frame):
                return
            server.metrics.viewer_messages_total.inc()
            server.metrics.viewer_bytes_total.inc(len(frame))
            index = first + count
            kind = b"delta"
            continue
        if live is None or live.ended:
            await _send(
                ws, frames.message("session_ended", {"sessionId": session_id, "nextIndex": index})
            )
            return
        assert changed is not None
        await changed.wait()


async def _send(ws: WebSocket, frame: bytes) -> bool:
    try:
        await ws.send(frame)
    except ConnectionClosed:
        return False
    return True
