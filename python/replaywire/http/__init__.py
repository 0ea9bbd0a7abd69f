"""The HTTP room: h11 connections, the REST API and the WebSocket upgrade."""

from .routes import RouteDeps
from .server import HttpDeps, handle_connection

__all__ = ["HttpDeps", "RouteDeps", "handle_connection"]
