"""Run a module's end-to-end tests on both WebSocket codecs:
``from e2e.backends import ws_backend`` overrides the conftest fixture with
one parametrised over ``rust`` and ``wsproto`` (``Config.ws_backend``).

A test whose behaviour only the Rust codec has is marked
``@pytest.mark.rust_only("why")``; its wsproto run is skipped with that
reason, so the difference stays visible in every report (``-ra``)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["rust", "wsproto"])
def ws_backend(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("rust_only")
    if request.param == "wsproto" and marker is not None:
        pytest.skip(f"Rust codec only: {marker.args[0]}")
    backend: str = request.param
    return backend
