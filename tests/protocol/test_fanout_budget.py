"""The fan-out budget (``VIEWER_FANOUT_BUDGET``): what live fan-out takes of
the event loop is measured per window, exported, and past the budget every
tick interval is stretched so that ticks take about the budget; once the
crowd is gone the stretch relaxes back to 1."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from conftest import make_config
from replaywire.observability.metrics import Metrics
from replaywire.protocol.broadcast import Broadcasts


def fanout(tmp_path: Path, budget: float) -> tuple[Broadcasts, Metrics]:
    metrics = Metrics()
    config = make_config(tmp_path, viewer_fanout_budget=budget)
    return Broadcasts(config, SimpleNamespace(), metrics), metrics  # type: ignore[arg-type]


def window(f: Broadcasts, share: float) -> None:
    """One measuring window in which ticks took ``share`` of the loop."""
    f._window_start = time.perf_counter() - Broadcasts.WINDOW
    f._window_spent = 0.0
    f.spent(share * Broadcasts.WINDOW)


def test_over_budget_stretches_ticks_to_the_budget(tmp_path: Path) -> None:
    f, metrics = fanout(tmp_path, budget=0.2)
    window(f, 0.5)  # 2.5 times the budget: ticks 2.5 times further apart
    assert abs(f.stretch - 2.5) < 0.05
    assert metrics.viewer_tick_stretch._value.get() == f.stretch
    window(f, 0.2)  # at the budget with that stretch: kept
    assert abs(f.stretch - 2.5) < 0.05
    assert metrics.viewer_fanout_seconds_total._value.get() >= 0.7 * Broadcasts.WINDOW


def test_stretch_relaxes_to_one_and_is_capped(tmp_path: Path) -> None:
    f, _ = fanout(tmp_path, budget=0.2)
    window(f, 50.0)  # absurd: capped, deltas still flow
    assert f.stretch == 20.0
    for _ in range(30):
        window(f, 0.0)
    assert f.stretch == 1.0


def test_under_budget_never_stretches(tmp_path: Path) -> None:
    f, _ = fanout(tmp_path, budget=0.2)
    for share in (0.0, 0.05, 0.19):
        window(f, share)
        assert f.stretch == 1.0
