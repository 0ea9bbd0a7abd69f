"""WebSocket transport: the RFC 6455 handshake over h11 and a connection
object that drives the Rust frame codec over a trio stream."""

from .budget import InflightBudget
from .connection import ConnectionClosed, WebSocket
from .extensions import DeflateParams, negotiate_deflate
from .handshake import HandshakeError, accept_key, check_upgrade

__all__ = [
    "ConnectionClosed",
    "DeflateParams",
    "HandshakeError",
    "InflightBudget",
    "WebSocket",
    "accept_key",
    "check_upgrade",
    "negotiate_deflate",
]
