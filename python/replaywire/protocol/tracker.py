"""The tracker side: ``session_start``, ``events_batch``, ``session_end``.

All messages completed by one socket read are handled in order and all
their answers go out in one write, so a tracker that keeps a window of
batches in flight gets its acks back in one frame burst.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _core
from ..errors import ProtocolError
from ..sessions import LiveSession
from ..ws import WebSocket
from . import frames

if TYPE_CHECKING:
    from ..app import Server


async def serve_tracker(ws: WebSocket, server: Server) -> None:
    """Serve one tracker connection until it closes (raises ConnectionClosed)."""
    handler = _Tracker(ws, server)
    while True:
        out: list[bytes] = []
        for msg in await ws.receive():
            out.append(await handler.handle(msg))
        await ws.send(b"".join(out))


class _Tracker:
    def __init__(self, ws: WebSocket, server: Server) -> None:
        self.ws = ws
        self.server = server
        self.hub = server.hub
        self.metrics = server.metrics
        self.sessions: dict[str, LiveSession] = {}
        # Labelled children resolved once: .labels() costs a lock and a dict
        # lookup, too much for once per batch.
        self.count_batch = self.metrics.messages_total.labels("tracker", "events_batch").inc

    async def handle(self, msg: _core.WsMessage) -> bytes:
        seq: int | None = None
        try:
            if not msg.is_text:
                raise ProtocolError("invalid_message", "tracker messages are JSON text frames")
            decoded = self.server.protocol.decode(msg.data)
            if isinstance(decoded, _core.EventsBatch):
                seq = decoded.seq
                self.count_batch()
                session = self._session(decoded.session_id, seq)
                accepted = await self.hub.accept_batch(session, decoded)
                return frames.ack(session.id_json, accepted)
            if isinstance(decoded, _core.SessionStart):
                self.metrics.messages_total.labels("tracker", "session_start").inc()
                return await self._start(decoded)
            if isinstance(decoded, _core.SessionEnd):
                self.metrics.messages_total.labels("tracker", "session_end").inc()
                session = self._session(decoded.session_id, None)
                await self.hub.end_session(session, "client")
                del self.sessions[session.id]
                return frames.message("session_ended", {"sessionId": session.id})
            raise ProtocolError(
                "not_allowed", "viewer messages are not accepted on a tracker connection"
            )
        except _core.MessageError as exc:
            return self._error(exc.code, exc.message, exc.seq if exc.seq is not None else seq)
        except ProtocolError as exc:
            return self._error(exc.code, exc.message, exc.seq if exc.seq is not None else seq)

    async def _start(self, start: _core.SessionStart) -> bytes:
        sid = start.session_id
        if (
            sid not in self.sessions
            and len(self.sessions) >= self.server.config.max_sessions_per_connection
        ):
            raise ProtocolError(
                "session_limit",
                f"at most {self.server.config.max_sessions_per_connection} sessions per connection",
            )
        session = await self.hub.start_session(start)
        self.sessions[sid] = session
        return frames.message(
            "session_started",
            {
                "sessionId": sid,
                "nextSeq": session.seqs.next_seq,
                "nextIndex": self.hub.buffers.next_index(sid),
            },
        )

    def _session(self, session_id: str | None, seq: int | None) -> LiveSession:
        if session_id is None:
            if len(self.sessions) != 1:
                raise ProtocolError(
                    "unknown_session",
                    "sessionId is required when the connection has no or several sessions",
                    seq,
                )
            session = next(iter(self.sessions.values()))
        else:
            found = self.sessions.get(session_id)
            if found is None:
                raise ProtocolError(
                    "unknown_session",
                    f"session {session_id!r} was not started on this connection",
                    seq,
                )
            session = found
        if session.ended:
            del self.sessions[session.id]
            raise ProtocolError("unknown_session", "session has ended; send session_start", seq)
        return session

    def _error(self, code: str, message: str, seq: int | None) -> bytes:
        self.metrics.protocol_errors_total.labels(code).inc()
        self.server.warn_client("tracker_message_rejected", code=code, message=message)
        if len(self.sessions) == 1:
            self.hub.record_error(next(iter(self.sessions)), code, message, seq)
        return frames.error(code, message, seq)
