"""A page recorded by the tracker in Chromium is stored by replaywire, and
the stored events replay in rrweb (the viewer's history mode) to the same
DOM. The session goes on across a navigation in the tab."""

from __future__ import annotations

from e2e.processes import ServerProcess

from .harness import READ_TOKEN, Browser, PageServer, get_json
from .replay_dom import TRACKER_IDLE, TRACKER_STATS, replay_has, replay_value

META, FULL_SNAPSHOT, INCREMENTAL = 4, 2, 3
MUTATION, MOUSE_INTERACTION, INPUT = 0, 2, 5
CLICK = 2


def stored_events(server: ServerProcess, session_id: str) -> list[dict]:
    page = get_json(server.url(f"/sessions/{session_id}/events"))
    assert page["fromIndex"] == 0 and page["count"] == page["nextIndex"] == len(page["events"])
    events: list[dict] = page["events"]
    return events


def test_recorded_page_is_stored_and_replays(
    browser: Browser, site: PageServer, replaywire: ServerProcess
) -> None:
    browser.goto("shop", site.url("app.html"))
    browser.wait_for("shop", TRACKER_IDLE)
    session_id = browser.eval("shop", f"{TRACKER_STATS}.sessionId")
    browser.click("shop", "#add")
    browser.click("shop", "#add")
    browser.type("shop", "#name", "Ada")
    browser.wait_for("shop", TRACKER_IDLE)

    # Navigation in the same tab: the next page goes on with the same session.
    browser.click("shop", "#next")
    browser.wait_for("shop", "location.pathname.endsWith('page2.html') && " + TRACKER_IDLE)
    assert browser.eval("shop", f"{TRACKER_STATS}.sessionId") == session_id
    browser.click("shop", "#pay")
    browser.wait_for("shop", TRACKER_IDLE)
    recorded = browser.eval("shop", TRACKER_STATS)["recordedEvents"]  # both pages

    events = stored_events(replaywire, session_id)
    assert len(events) == recorded, "every recorded event stored, once"
    metas = [e["data"]["href"] for e in events if e["type"] == META]
    assert [m.rsplit("/", 1)[1] for m in metas] == ["app.html", "page2.html"]
    assert sum(e["type"] == FULL_SNAPSHOT for e in events) == 2
    incremental = [e["data"] for e in events if e["type"] == INCREMENTAL]
    clicks = [d for d in incremental if d["source"] == MOUSE_INTERACTION and d["type"] == CLICK]
    assert len(clicks) >= 4  # two adds, the checkout link, pay
    assert any(d["source"] == INPUT and d.get("text") == "Ada" for d in incremental)
    added = [
        node["node"].get("attributes", {}).get("id")
        for d in incremental
        if d["source"] == MUTATION
        for node in d["adds"]
    ]
    assert "item-1" in added and "item-2" in added

    # End the session, then replay what was stored, in the viewer.
    browser.eval("shop", "window.replaywire.tracker.stop().then(() => true)")
    info = get_json(replaywire.url(f"/sessions/{session_id}"))
    assert info["live"] is False
    browser.goto("history", replaywire.url(f"/viewer?token={READ_TOKEN}&session={session_id}"))
    browser.wait_for("history", "window.__replaywireViewer?.mode === 'history'")
    browser.wait_for("history", replay_has("#title"))
    # Seek (paused) to just before the navigation: the first page as it was
    # left; then to the end: the second page after paying.
    start, navigated = [e["timestamp"] for e in events if e["type"] == META]
    seek = "window.__replaywireViewer.player.goto({}, false)"
    browser.eval("history", seek.format(navigated - start - 1))
    browser.wait_for("history", replay_has("#item-2", "item 2"))
    assert browser.eval("history", replay_value("#name")) == "Ada"
    browser.eval("history", seek.format(events[-1]["timestamp"] - start + 1))
    browser.wait_for("history", replay_has("#paid:not([hidden])", "Paid"))
