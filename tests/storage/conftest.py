"""The writer tests' storage: the real SQLite backend behind a fault injector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .factories import FaultyStorage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[FaultyStorage]:
    backend = FaultyStorage(tmp_path / "replaywire.db")
    backend.open()
    yield backend
    backend.close()
