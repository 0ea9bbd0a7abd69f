"""The viewer as people use it every day, in Chromium against a server in
development mode (as `make run` starts it): pages recorded with the
one-line snippet, found in the session list through its filters (each row
saying who, where, when, how long, how much, live or ended, watchers),
opened by their shareable link (at a moment, with ``?t=``), a live one
paused, scrubbed back and brought back to live, and an ended one showing
its recorded errors on the timeline. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import json

from websockets.sync.client import connect

from e2e.processes import ServerProcess
from rrweb import batch_message, session_events, start_message

from .harness import ARTIFACTS, Browser, PageServer
from .replay_dom import TRACKER_IDLE, TRACKER_STATS, replay_has

VIEWER = "window.__replaywireViewer"
ROWS = "[...document.querySelectorAll('#session-list li')].map((li) => li.dataset.sessionId)"


def record_page(browser: Browser, site: PageServer, page: str, name: str, user: str) -> str:
    """A page recorded by the snippet, with ``data-user-id``; its session id."""
    site.values["TRACKER_OPTIONS"] = f'data-user-id="{user}"'
    try:
        browser.goto(name, site.url(page))
    finally:
        site.values["TRACKER_OPTIONS"] = ""
    browser.wait_for(name, TRACKER_IDLE)
    if page == "app.html":
        browser.click(name, "#add")
        browser.wait_for(name, TRACKER_IDLE)
    session_id: str = browser.eval(name, f"{TRACKER_STATS}.sessionId")
    return session_id


def refuse_a_batch(server: ServerProcess, session_id: str, url: str) -> None:
    """A later tracker connection of the session (a second one while the
    page's is live would take the session over from it) resumes it and
    sends a batch far past the seq window: it is refused with
    ``seq_out_of_window``, which the server records as the session's
    error. Then it ends the session again."""
    with connect(f"ws://127.0.0.1:{server.port}/ws?type=tracker") as ws:
        ws.send(start_message(session_id, userId="u-carol", url=url))
        assert json.loads(ws.recv(timeout=10))["type"] == "session_started"
        ws.send(batch_message(session_id, 1_000_000, list(session_events(1))).decode())
        refused = json.loads(ws.recv(timeout=10))
        assert refused["data"]["code"] == "seq_out_of_window", refused
        ws.send(json.dumps({"type": "session_end", "data": {"sessionId": session_id}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "session_ended"


def filter_list(browser: Browser, page: str, **fields: str | bool) -> None:
    """Fill in the filter form (the fields not given empty) and submit it."""
    values = {
        name: fields.get(name, "") for name in ("user", "url", "since", "until", "minDuration")
    }
    fill = (
        "(() => { const form = document.getElementById('filters');"
        f" for (const [name, value] of Object.entries({json.dumps(values)}))"
        " form.elements[name].value = value;"
        f" form.elements.live.checked = {json.dumps(bool(fields.get('live')))};"
        " document.getElementById('session-list').replaceChildren(); return true; })()"
    )
    browser.eval(page, fill)
    browser.click(page, "#filters button[type=submit]")


def test_find_share_pause_and_see_errors(
    browser: Browser, site: PageServer, dev_server: ServerProcess
) -> None:
    alice = record_page(browser, site, "app.html", "alice", "u-alice")
    browser.eval("alice", "window.replaywire.tracker.stop().then(() => true)")  # ended
    bob = record_page(browser, site, "page2.html", "bob", "u-bob")  # stays live
    carol = record_page(browser, site, "app.html", "carol", "u-carol")
    browser.click("carol", "#add")
    browser.wait_for("carol", TRACKER_IDLE)
    browser.eval("carol", "window.replaywire.tracker.stop().then(() => true)")
    refuse_a_batch(dev_server, carol, site.url("app.html"))

    # The list, first screen of the viewer: every session, newest first.
    browser.goto("viewer", dev_server.url("/viewer/"))
    browser.wait_for("viewer", f"{ROWS}.length === 3", timeout=10)
    assert browser.eval("viewer", ROWS) == [carol, bob, alice]
    row = browser.eval(
        "viewer",
        f"document.querySelector('#session-list li[data-session-id=\"{alice}\"]').innerText",
    )
    assert "u-alice" in row and "/app.html" in row and "ended" in row and "events" in row
    bob_row = browser.eval(
        "viewer", f"document.querySelector('#session-list li[data-session-id=\"{bob}\"]').innerText"
    )
    assert "u-bob" in bob_row and "live" in bob_row and "/page2.html" in bob_row
    browser.screenshot("viewer", ARTIFACTS / "viewer-session-list.png")

    # Filters: by user, by URL, live only, and a duration nobody reached.
    filter_list(browser, "viewer", user="u-alice")
    browser.wait_for("viewer", f"JSON.stringify({ROWS}) === {json.dumps(json.dumps([alice]))}")
    filter_list(browser, "viewer", url="page2")
    browser.wait_for("viewer", f"JSON.stringify({ROWS}) === {json.dumps(json.dumps([bob]))}")
    filter_list(browser, "viewer", live=True)
    browser.wait_for("viewer", f"JSON.stringify({ROWS}) === {json.dumps(json.dumps([bob]))}")
    filter_list(browser, "viewer", minDuration="3600")
    browser.wait_for(
        "viewer", f"{ROWS}.length === 0 && !document.getElementById('session-list').hasChildNodes()"
    )
    filter_list(browser, "viewer", user="u-alice")
    browser.wait_for("viewer", f"{ROWS}.length === 1")
    browser.screenshot("viewer", ARTIFACTS / "viewer-session-list-filtered.png")

    # Open alice's session from the list: its own link, replayed from storage.
    browser.click("viewer", f'#session-list li[data-session-id="{alice}"] a')
    browser.wait_for("viewer", f"{VIEWER}.status === 'history'", timeout=20)
    assert browser.eval("viewer", "location.pathname") == f"/viewer/sessions/{alice}"
    browser.wait_for("viewer", replay_has("#item-1", "item 1"), timeout=10)
    # A link to a moment: the replay at 200 ms, paused there, in a new tab.
    browser.eval("viewer", f"{VIEWER}.player.goto(200, false) || true")
    browser.click("viewer", "#share")
    link = browser.eval("viewer", "document.getElementById('share-url').value")
    assert link.startswith(dev_server.url(f"/viewer/sessions/{alice}?t="))
    browser.goto("shared", link)
    browser.wait_for("shared", f"{VIEWER}.status === 'history'", timeout=20)
    at = browser.eval("shared", f"{VIEWER}.player.getReplayer().getCurrentTime()")
    assert abs(at - int(link.rsplit("=", 1)[1])) < 100, (at, link)

    # An ended session with a recorded error: a mark on its timeline, and the error listed.
    browser.goto("errors", dev_server.url(f"/viewer/sessions/{carol}"))
    browser.wait_for("errors", f"{VIEWER}.status === 'history'", timeout=20)
    marks = browser.eval("errors", f"{VIEWER}.marks")
    assert len(marks) == 1 and marks[0]["title"].startswith("seq_out_of_window"), marks
    assert (
        browser.eval(
            "errors", "document.querySelectorAll('.rr-progress div[title=\"error\"]').length"
        )
        == 1
    )
    assert "seq_out_of_window" in browser.eval(
        "errors", "document.getElementById('error-list').innerText"
    )
    browser.screenshot("errors", ARTIFACTS / "viewer-errors-on-timeline.png")

    # A live session: pause, scrub back into what was recorded, jump to live.
    browser.goto("live", dev_server.url(f"/viewer/sessions/{bob}"))
    browser.wait_for("live", f"{VIEWER}.status === 'live'", timeout=20)
    assert browser.eval("live", "document.getElementById('go-live').hidden") is True
    browser.click("live", "#pause")
    browser.wait_for("live", f"{VIEWER}.status === 'paused'")
    assert browser.eval("live", "!!document.querySelector('.rr-controller')") is True
    applied = browser.eval("live", f"{VIEWER}.applied")
    later = "Object.assign(document.createElement('p'), {id: 'later', textContent: 'later'})"
    browser.eval("bob", f"document.body.append({later}) || true")
    browser.wait_for(
        "live", f"{VIEWER}.applied > {applied}", timeout=10
    )  # the timeline grows while paused
    browser.eval("live", f"{VIEWER}.player.goto(0, false) || true")  # scrub back to the start
    assert not browser.eval("live", replay_has("#later"))
    browser.screenshot("live", ARTIFACTS / "viewer-live-paused.png")
    browser.click("live", "#go-live")
    browser.wait_for("live", f"{VIEWER}.status === 'live'")
    browser.wait_for("live", replay_has("#later", "later"), timeout=10)
    errors = [
        f"{name}: {line}"
        for name in ("viewer", "shared", "errors", "live")
        for line in browser.logs(name)
        if line.startswith(("error", "pageerror"))
    ]
    assert errors == []
