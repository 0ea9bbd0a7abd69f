"""replaywire: a session-replay ingest server.

Public API: :class:`Config` (every knob) and :class:`Server` (one instance,
run with ``await nursery.start(server.run)``); ``replaywire.client`` holds
the reference decoders for clients. Everything else is private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Config", "Server", "__version__"]

if TYPE_CHECKING:
    from .app import Server
    from .config import Config


def __getattr__(name: str) -> Any:
    # Lazy, so that `replaywire --help` does not import trio and the extension.
    if name == "Config":
        from .config import Config

        return Config
    if name == "Server":
        from .app import Server

        return Server
    raise AttributeError(name)
