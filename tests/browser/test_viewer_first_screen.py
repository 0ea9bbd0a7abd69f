"""The viewer's first screen. A server that checks no credentials (no
TENANTS: development mode) opens straight on the session list, at /viewer
and /viewer/ alike, with no console error (the icon is served too); a
server with tenants asks for the token first."""

from __future__ import annotations

import pytest

from e2e.processes import ServerProcess

from .harness import ARTIFACTS, Browser, PageServer
from .replay_dom import TRACKER_IDLE, TRACKER_STATS

APP_SHOWN = "!document.getElementById('app').hidden"
LOGIN_SHOWN = "!document.getElementById('login').hidden"


@pytest.mark.parametrize("path", ["/viewer", "/viewer/"])
def test_dev_mode_opens_on_the_session_list(
    browser: Browser, site: PageServer, dev_server: ServerProcess, path: str
) -> None:
    browser.goto("shop", site.url("app.html"))
    browser.wait_for("shop", TRACKER_IDLE)
    session_id = browser.eval("shop", f"{TRACKER_STATS}.sessionId")

    page = f"viewer{path.replace('/', '-')}"
    browser.goto(page, dev_server.url(path))
    browser.wait_for(page, APP_SHOWN)
    assert browser.eval(page, LOGIN_SHOWN) is False
    assert browser.eval(page, "document.getElementById('logout').hidden") is True
    browser.wait_for(
        page, f"document.getElementById('live-list').textContent.includes('{session_id}')"
    )
    browser.screenshot(page, ARTIFACTS / f"viewer-first-screen-dev{path.replace('/', '-')}.png")

    # Opening the session from the list replays it live, as with a token.
    browser.click(page, f"#live-list a[href$='{session_id}']")
    browser.wait_for(page, "window.__replaywireViewer.mode === 'live'")
    browser.wait_for(page, "window.__replaywireViewer.player !== null")
    errors = [line for line in browser.logs(page) if line.startswith(("error", "pageerror"))]
    assert errors == []


def test_with_tenants_the_token_is_asked_for_first(
    browser: Browser, replaywire: ServerProcess
) -> None:
    browser.goto("viewer-tenants", replaywire.url("/viewer/"))
    browser.wait_for("viewer-tenants", LOGIN_SHOWN)
    assert browser.eval("viewer-tenants", APP_SHOWN) is False
