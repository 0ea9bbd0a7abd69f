"""SIGKILL the server while a page is being recorded, start it again on the
same port: the tracker reconnects, resends what was not acknowledged, and
the stored session has every recorded event once, in order (no gap)."""

from __future__ import annotations

from e2e.processes import ServerProcess

from .harness import Browser, PageServer, get_json
from .replay_dom import TRACKER_IDLE, TRACKER_STATS


def test_tracker_resends_after_server_crash(
    browser: Browser, site: PageServer, replaywire: ServerProcess
) -> None:
    browser.goto("shop", site.url("app.html"))
    browser.wait_for("shop", TRACKER_IDLE)
    session_id = browser.eval("shop", f"{TRACKER_STATS}.sessionId")
    browser.eval("shop", "window.startTicking(30)")  # a DOM change every 30 ms
    browser.wait_for("shop", f"{TRACKER_STATS}.nextSeq >= 5")

    replaywire.kill()
    # Recording goes on while the server is down: batches pile up unacked.
    browser.wait_for("shop", f"!{TRACKER_STATS}.connected && {TRACKER_STATS}.unackedBatches >= 3")
    replaywire.start()
    browser.wait_for("shop", f"{TRACKER_STATS}.connected && {TRACKER_STATS}.reconnects >= 1")
    browser.wait_for("shop", f"{TRACKER_STATS}.unackedBatches === 0", timeout=15)
    ticks = browser.eval("shop", "window.stopTicking()")
    browser.wait_for("shop", TRACKER_IDLE, timeout=15)
    stats = browser.eval("shop", TRACKER_STATS)
    assert stats["droppedEvents"] == 0

    page = get_json(replaywire.url(f"/sessions/{session_id}/events"))
    events = page["events"]
    assert page["count"] == len(events) == stats["recordedEvents"]
    timestamps = [e["timestamp"] for e in events]
    assert timestamps == sorted(timestamps), "stored in recording order"
    added = [
        node["node"].get("attributes", {}).get("id")
        for e in events
        if e["type"] == 3 and e["data"]["source"] == 0
        for node in e["data"]["adds"]
    ]
    ticks_stored = [a for a in added if a and a.startswith("tick-")]
    assert ticks_stored == [f"tick-{n}" for n in range(1, ticks + 1)], "every tick once, in order"
    log = [line.get("event") for line in replaywire.log_lines()]
    assert log.count("server_listening") == 2
