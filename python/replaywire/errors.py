"""Every exception a caller of replaywire may catch, in one module (as
h11's ``_util.py`` holds h11's): the rooms raise them from here, and each
carries what its caller answers with.

The Rust core's are re-exported: ``CoreError`` and its subclasses
``MessageError`` (a bad protocol message), ``WebSocketError`` (broken
framing) and ``CodecError`` (data a codec refuses). The ones defined here
cover what only the server can judge: configuration, credentials, session
state and limits, HTTP requests, storage, Redis and the viewer stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core import CodecError, CoreError, MessageError, WebSocketError

_CORE = ("CodecError", "CoreError", "MessageError", "WebSocketError")


def __getattr__(name: str) -> Any:
    # The core's, on first use: configuration and the command line import
    # this module, and `replaywire --help` does not load the extension.
    if name in _CORE:
        from . import _core

        return getattr(_core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CodecError",
    "ConfigError",
    "ConnectionClosed",
    "CoreError",
    "DictionaryError",
    "GapError",
    "HandshakeError",
    "HttpError",
    "MessageError",
    "ProtocolError",
    "RedisUnavailable",
    "StorageError",
    "TenantError",
    "TokenError",
    "TokenExpired",
    "WebSocketError",
    "WireError",
]


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


class ConfigError(ValueError):
    """A setting has a value the server cannot run with.

    ``setting`` is the knob's field name (``"batch_size"``), or ``"config"``
    for a file that cannot be read at all; the message names it as the
    operator wrote it (``BATCH_SIZE=0: expected at least 1``). The CLI
    answers with exit code 2 and the message.
    """

    code = "invalid_config"

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.message = message


class TenantError(ValueError):
    """A tenant's configuration is not usable; the message says where."""


class TokenError(Exception):
    """A credential that proves nothing: malformed, badly signed, expired,
    unknown, or naming an unknown tenant. The message is safe to send back."""


class TokenExpired(TokenError):
    """A well-signed token past its ``exp`` (and the leeway)."""


class ConnectionClosed(Exception):
    """The connection is closed. ``code``/``reason`` are those of the close
    frame that ended it (received, or sent by us when ``local``)."""

    def __init__(self, code: int, reason: str = "", *, local: bool = False) -> None:
        super().__init__(f"connection closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason
        self.local = local


class HandshakeError(HttpError):
    """The request asked for an upgrade we cannot grant: 400 for a malformed
    upgrade, 426 (naming the version we speak) for another version."""


class StorageError(Exception):
    """Storage could not do what was asked.

    ``retryable`` tells the caller how to answer: True for faults that may
    clear by themselves (database busy or locked, disk full, connection
    lost) -- retry later, or answer 503; False for faults that will not
    (bad URL, bad data, storage closed) -- answer 500 or fail the start."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class RedisUnavailable(Exception):
    """Redis could not be reached or answered with an error; the caller
    carries on without it. ``code`` is ``redis_unavailable``."""

    code = "redis_unavailable"


class WireError(ValueError):
    """A message that is not ours (another version, or truncated)."""


class DictionaryError(ValueError):
    """The file is not a zstd dictionary (or cannot be read)."""


class GapError(Exception):
    """A message did not start where the previous one ended."""
