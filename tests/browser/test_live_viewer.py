"""A second page opens /viewer while the tracked page is driven, joins the
session live, and shows each recorded DOM change within a second, also when
the tracked page's clock is 10 minutes fast (the viewer plays behind the
tracker's clock as measured, not behind its own)."""

from __future__ import annotations

import pytest

from e2e.processes import ServerProcess

from .harness import ARTIFACTS, READ_TOKEN, Browser, PageServer, get_json
from .replay_dom import TRACKER_IDLE, TRACKER_STATS, replay_has, replay_value

LIVE_WITHIN_MS = 1000


AHEAD_MS = 600_000


@pytest.mark.parametrize(
    ("codec", "ahead_ms"), [("zstd", 0), ("deflate", 0), ("zstd", AHEAD_MS)], ids=str
)
def test_viewer_shows_live_changes_within_a_second(
    browser: Browser, site: PageServer, replaywire: ServerProcess, codec: str, ahead_ms: int
) -> None:
    site.values["COMPRESS"] = "true" if codec == "deflate" else "false"
    site.values["CLOCK_AHEAD_MS"] = str(ahead_ms)
    try:
        check_live_viewer(browser, site, replaywire, codec, ahead_ms)
    finally:
        site.values["CLOCK_AHEAD_MS"] = "0"


def check_live_viewer(
    browser: Browser, site: PageServer, replaywire: ServerProcess, codec: str, ahead_ms: int
) -> None:
    browser.goto("shop", site.url("app.html"))
    browser.wait_for("shop", TRACKER_IDLE)
    session_id = browser.eval("shop", f"{TRACKER_STATS}.sessionId")
    browser.click("shop", "#add")

    viewer = f"viewer-{codec}-{ahead_ms}"
    browser.goto(
        viewer, replaywire.url(f"/viewer?token={READ_TOKEN}&codec={codec}&session={session_id}")
    )
    browser.wait_for(viewer, "window.__replaywireViewer?.mode === 'live'")
    browser.wait_for(viewer, replay_has("#item-1", "item 1"))  # from the join snapshot

    for n in (2, 3, 4):
        took = browser.click_then_wait(
            "shop", "#add", viewer, replay_has(f"#item-{n}", f"item {n}"), timeout=5
        )
        assert took < LIVE_WITHIN_MS, f"item {n} showed after {took} ms"
    browser.type("shop", "#name", "live")
    browser.wait_for(viewer, f"{replay_value('#name')} === 'live'", timeout=5)
    state = browser.eval(viewer, "({...window.__replaywireViewer, player: null})")
    assert state["gaps"] == 0 and state["joins"] == 1
    # The server measured the page's clock; the viewer plays behind it.
    assert abs(state["clock"]["skew"] - ahead_ms) < 1000, state
    info = get_json(replaywire.url(f"/sessions/{session_id}"))
    assert abs(info["clockSkewMs"] - ahead_ms) < 1000, info
    suffix = "" if not ahead_ms else "-clock-ahead"
    browser.screenshot(viewer, ARTIFACTS / f"viewer-live-{codec}{suffix}.png")
    # The viewer lists the session among the live ones.
    live_list = browser.eval(viewer, "document.getElementById('live-list').textContent")
    assert session_id in live_list
