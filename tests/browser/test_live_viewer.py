"""A second page opens /viewer while the tracked page is driven, joins the
session live, and shows each recorded DOM change within a second."""

from __future__ import annotations

import pytest

from e2e.processes import ServerProcess

from .harness import ARTIFACTS, READ_TOKEN, Browser, PageServer
from .replay_dom import TRACKER_IDLE, TRACKER_STATS, replay_has, replay_value

LIVE_WITHIN_MS = 1000


@pytest.mark.parametrize("codec", ["zstd", "deflate"])
def test_viewer_shows_live_changes_within_a_second(
    browser: Browser, site: PageServer, replaywire: ServerProcess, codec: str
) -> None:
    site.values["COMPRESS"] = "true" if codec == "deflate" else "false"
    browser.goto("shop", site.url("app.html"))
    browser.wait_for("shop", TRACKER_IDLE)
    session_id = browser.eval("shop", f"{TRACKER_STATS}.sessionId")
    browser.click("shop", "#add")

    viewer = f"viewer-{codec}"
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
    browser.screenshot(viewer, ARTIFACTS / f"viewer-live-{codec}.png")
    # The viewer lists the session among the live ones.
    live_list = browser.eval(viewer, "document.getElementById('live-list').textContent")
    assert session_id in live_list
