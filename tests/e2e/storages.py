"""Run a module's end-to-end tests on every persistent storage backend:
``from e2e.storages import database_url`` overrides the conftest fixture
with one parametrised over SQLite and a fresh PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'replaywire.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url
