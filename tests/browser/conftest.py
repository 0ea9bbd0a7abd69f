"""Fixtures of the browser tests: one Chromium per module, the test site,
and a replaywire server process on a fixed loopback port (so the tracker
finds it again after a restart)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.processes import ServerProcess
from replaywire.auth.tokens import token_hash

from .harness import READ_TOKEN, WRITE_KEY, Browser, PageServer, free_port


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("browser") / "driver.log")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def site() -> Iterator[PageServer]:
    s = PageServer()
    try:
        yield s
    finally:
        s.close()


def serve(
    tmp_path: Path, site: PageServer, *, name: str = "replaywire", tenants: bool = True, **env: str
) -> ServerProcess:
    """A started replaywire for the test site on SQLite: with ``tenants``,
    one tenant and durable acks, as a deployment would run; without, as
    `make run` starts it (development mode). ``env`` overrides (smaller
    limits)."""
    if tenants:
        env = {
            "ACK_MODE": "durable",
            "BATCH_INTERVAL": "20",
            "TENANTS": json.dumps(
                {
                    "shop": {
                        "write_keys": [WRITE_KEY],
                        "allowed_origins": [site.origin],
                        "api_token_hashes": [token_hash(READ_TOKEN)],
                    }
                }
            ),
            **env,
        }
    server = ServerProcess(
        tmp_path,
        name,
        HOST="127.0.0.1",
        PORT=str(free_port()),
        DATABASE_URL=f"sqlite:///{tmp_path / 'replaywire.db'}",
        LOG_LEVEL="info",
        **env,
    )
    if not tenants:
        server.env.pop("TENANTS", None)
    server.start()
    site.values["SERVER"] = f"http://127.0.0.1:{server.port}"
    return server


@pytest.fixture
def replaywire(tmp_path: Path, site: PageServer) -> Iterator[ServerProcess]:
    server = serve(tmp_path, site)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dev_server(tmp_path: Path, site: PageServer) -> Iterator[ServerProcess]:
    """`replaywire serve` as `make run` starts it: no tenants, loopback."""
    server = serve(tmp_path, site, name="replaywire-dev", tenants=False)
    try:
        yield server
    finally:
        server.stop()
