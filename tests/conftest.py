"""Shared fixtures: a real server on a free loopback port, started with
``nursery.start`` (no sleeps), and its storage in a temporary folder."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import structlog
import trio

sys.path.insert(0, str(Path(__file__).parent))

from replaywire import Config, Server


def make_config(tmp_path: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "database_url": f"sqlite:///{tmp_path / 'replaywire.db'}",
        "batch_interval": 20,
        "idle_sweep_interval": 0.2,
        "log_level": "warning",
    }
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


@pytest.fixture
async def start_server(
    nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[Callable[..., object]]:
    """Factory: ``server = await start_server(**config_overrides)``. Every
    server still running at the end of the test is shut down gracefully."""
    servers: list[Server] = []

    async def start(**overrides: object) -> Server:
        server = Server(make_config(tmp_path, **overrides))
        await nursery.start(server.run)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        await server.stopped.wait()


@pytest.fixture
async def server(start_server: Callable[..., object]) -> Server:
    return await start_server()  # type: ignore[misc, no-any-return]


async def stop(server: Server) -> None:
    server.shutdown()
    await server.stopped.wait()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what configure_logging did: our root handlers, the level,
    structlog's configuration and any bound context."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.contextvars.clear_contextvars()
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
