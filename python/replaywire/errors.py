"""Errors raised by the server's Python rooms.

The Rust core has its own (``_core.MessageError`` for bad messages,
``_core.WebSocketError`` for broken framing); these cover what only the
server can judge: session state, limits, HTTP requests. Each carries what
the caller answers with.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A client message cannot be served. Answered with an error frame
    ``{"type":"error","data":{"code","message","seq"?,"retryAfterMs"?}}``; the connection
    stays open. Codes are listed in ``docs/protocol.md``."""

    def __init__(
        self, code: str, message: str, seq: int | None = None, *, retry_after_ms: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.seq = seq
        self.retry_after_ms = retry_after_ms  # set for refusals the client should retry


class HttpError(Exception):
    """An HTTP request cannot be served: answered with ``status`` and the
    JSON body ``{"error":{"code","message"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []
