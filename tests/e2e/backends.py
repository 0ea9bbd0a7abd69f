"""Run a module's end-to-end tests on both WebSocket codecs:
``from e2e.backends import ws_backend`` overrides the conftest fixture with
one parametrised over ``rust`` and ``wsproto`` (``Config.ws_backend``).

Where the codecs differ on purpose, a test takes ``ws_backend`` and
asserts each one's documented behaviour: nothing is skipped."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["rust", "wsproto"])
def ws_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend
