"""The tracker and viewer protocols over WebSocket (see docs/protocol.md)."""

from .tracker import TrackerDeps, serve_tracker
from .viewer import ViewerDeps, serve_viewer

__all__ = ["TrackerDeps", "ViewerDeps", "serve_tracker", "serve_viewer"]
