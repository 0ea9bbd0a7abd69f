"""The HTTP room: h11 connections, the REST API and the WebSocket upgrade."""

from .server import handle_connection

__all__ = ["handle_connection"]
