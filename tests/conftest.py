"""Shared fixtures: a real server on a free loopback port, started with
``nursery.start`` (no sleeps), and its storage in a temporary folder."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import structlog
import trio
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

from replaywire import Config, Server

# Property tests check behaviour, not speed: on a loaded 2-core machine (a
# build beside them, a server under load in the next test) generation can be
# slow, so the too_slow health check and per-example deadlines are off.
settings.register_profile("replaywire", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("replaywire")


def make_config(tmp_path: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "database_url": f"sqlite:///{tmp_path / 'replaywire.db'}",
        "spool_dir": str(tmp_path / "spool"),
        "batch_interval": 20,
        "idle_sweep_interval": 0.2,
        "log_level": "warning",
    }
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The servers' storage; a module may override this fixture (see
    ``tests/e2e/storages.py``) to run its tests on PostgreSQL as well."""
    return f"sqlite:///{tmp_path / 'replaywire.db'}"


@pytest.fixture
def ws_backend() -> str:
    """The servers' WebSocket codec; a module may override this fixture
    (see ``tests/e2e/backends.py``) to run its tests on both."""
    return "rust"


@pytest.fixture
async def start_server(
    nursery: trio.Nursery, tmp_path: Path, database_url: str, ws_backend: str
) -> AsyncIterator[Callable[..., object]]:
    """Factory: ``server = await start_server(**config_overrides)``. Every
    server still running at the end of the test is shut down gracefully."""
    servers: list[Server] = []

    async def start(**overrides: object) -> Server:
        defaults = {"database_url": database_url, "ws_backend": ws_backend}
        server = Server(make_config(tmp_path, **{**defaults, **overrides}))
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


# --- PostgreSQL ------------------------------------------------------------------
# Where the server comes from, and why these never skip: see services.py.
# `postgres_url` is one fresh database for the whole run (dropped at the end),
# `postgres_storage` a PostgresStorage on it with empty tables, and
# `fresh_postgres_url` a database of its own for tests that need an empty one
# (migrations). `throwaway_postgres` is a private server a test may stop and
# start (outages); it is started again for the next test if a test left it
# stopped.

import os  # noqa: E402
import secrets  # noqa: E402

import psycopg  # noqa: E402

import services  # noqa: E402
from replaywire.storage import PostgresStorage  # noqa: E402


def _database_name() -> str:
    return f"replaywire_test_{os.getpid()}_{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL on which the tests may create databases."""
    try:
        url, cluster = services.postgres_admin_url()
    except services.ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        if cluster is not None:
            cluster.cleanup()


def _fresh_database(admin_url: str) -> Iterator[str]:
    name = _database_name()
    url = services.create_database(admin_url, name)
    yield url
    services.drop_database(admin_url, name)


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of this test run, shared by its tests."""
    yield from _fresh_database(postgres_admin_url)


@pytest.fixture
def fresh_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of this test alone."""
    yield from _fresh_database(postgres_admin_url)


@pytest.fixture
def postgres_storage(postgres_url: str) -> Iterator[PostgresStorage]:
    storage = PostgresStorage(postgres_url)
    storage.open()
    try:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("TRUNCATE sessions, chunks, session_errors RESTART IDENTITY")
        yield storage
    finally:
        storage.close()


@pytest.fixture(scope="session")
def _throwaway_postgres_cluster() -> Iterator[services.ThrowawayPostgres]:
    try:
        cluster = services.ThrowawayPostgres()
    except services.ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    cluster.cleanup()


@pytest.fixture
def throwaway_postgres(
    _throwaway_postgres_cluster: services.ThrowawayPostgres,
) -> services.ThrowawayPostgres:
    try:
        return _throwaway_postgres_cluster.start()
    except services.ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


# --- end of PostgreSQL -----------------------------------------------------------


# --- Redis -------------------------------------------------------------------------
# `redis_url` is the run's Redis (see services.py; never skipped), `redis_prefix`
# a key prefix of this test's own, deleted afterwards, and `throwaway_redis` a
# private redis-server a test may stop and start (outages).


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    try:
        url, server = services.redis_url()
    except services.ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield url
    if server is not None:
        server.cleanup()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"rwtest:{os.getpid()}:{secrets.token_hex(4)}:"
    yield prefix
    services.delete_prefix(redis_url, prefix)


@pytest.fixture
def redis_config(redis_url: str, redis_prefix: str) -> dict[str, str]:
    """The run's Redis and this test's prefix, as server settings."""
    return {"redis_url": redis_url, "redis_prefix": redis_prefix}


@pytest.fixture
def throwaway_redis() -> Iterator[services.ThrowawayRedis]:
    try:
        server = services.ThrowawayRedis().start()
    except services.ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[services.ThrowawayRedisCluster]:
    """A throwaway Redis Cluster of three masters for the run (tests keep
    to a prefix of their own, ``redis_prefix`` style). Fails, never skips,
    when it cannot be started: the cluster code would go untested."""
    try:
        cluster = services.ThrowawayRedisCluster().start()
    except (services.ServiceUnavailable, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"no Redis Cluster for the tests: {exc}", pytrace=False)
    yield cluster
    cluster.cleanup()
