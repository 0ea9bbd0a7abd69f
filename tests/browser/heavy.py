"""Recording the heavy test page (``pages/heavy.html``: a table of N cells)
and what it costs the page, for the tests that assert on it
(test_heavy_pages.py) and the benchmark that reports it
(benches/browser_pages.py).

What is measured, in one recording:
- ``first_replayable_s``: from the start of the navigation until the server
  holds the page's full snapshot durably (``keyframeIndex`` set), i.e. until
  a viewer can show the page;
- ``click_delays_ms``: for clicks sent while the snapshot is compressed and
  uploaded, how long each waited for the page's main thread;
- ``task_s``: Chrome's ``TaskDuration`` (main-thread busy time) over the
  whole recording; the same page without recording gives the baseline.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from e2e.processes import ServerProcess

from .harness import Browser, PageServer, get_json
from .replay_dom import TRACKER_IDLE, TRACKER_STATS

# Where pages/heavy.html puts its click probe (a fixed-position button).
PROBE_X, PROBE_Y = 60, 20
FULL_SNAPSHOT, META = 2, 4


@dataclass
class Recording:
    page: str
    cells: int
    session_id: str | None
    load_s: float  # navigation until the load event
    first_replayable_s: float | None
    click_delays_ms: list[float]
    task_s: float
    stats: dict[str, Any] = field(default_factory=dict)


def open_heavy_page(
    browser: Browser,
    site: PageServer,
    page: str,
    cells: int,
    *,
    record: bool = True,
    throttle_kbps: int = 0,
    fake_clock: bool = False,
) -> float:
    """Navigate ``page`` to the heavy page; the seconds until its load event."""
    site.values["AUTO"] = "true" if record else "false"
    try:
        if throttle_kbps:
            browser.throttle(page, throttle_kbps, latency_ms=40)
        if fake_clock:
            browser.clock_install(page)
        started = time.monotonic()
        browser.call("goto", page=page, url=site.url(f"heavy.html?cells={cells}"), timeout=120)
        return time.monotonic() - started
    finally:
        site.values["AUTO"] = "true"


def wait_replayable(server: ServerProcess, session_id: str, timeout: float = 120.0) -> float:
    """Poll the session's record until the server holds a full snapshot; the monotonic time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = get_json(server.url(f"/sessions/{session_id}"))
        except OSError:
            info = {}
        if info.get("keyframeIndex") is not None:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"no full snapshot stored within {timeout} s")


def record_heavy_page(
    browser: Browser,
    server: ServerProcess,
    site: PageServer,
    page: str,
    cells: int,
    *,
    record: bool = True,
    clicks: int = 10,
    throttle_kbps: int = 0,
) -> Recording:
    """Load the page (recording or not), click the probe while the snapshot
    goes up, and wait until it is stored and the tracker is idle."""
    task_before = browser.metrics(page)["TaskDuration"]  # also starts Chrome's counting
    started = time.monotonic()
    load_s = open_heavy_page(browser, site, page, cells, record=record, throttle_kbps=throttle_kbps)
    session_id = None
    replayable: list[float | BaseException] = []
    poller = None
    if record:
        browser.wait_for(page, f"{TRACKER_STATS}.snapshotsTaken >= 1", timeout=60)
        session_id = browser.eval(page, f"{TRACKER_STATS}.sessionId")

        def poll(session_id: str = session_id) -> None:
            try:
                replayable.append(wait_replayable(server, session_id) - started)
            except BaseException as exc:  # handed to the test below
                replayable.append(exc)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
    browser.click_at(page, PROBE_X, PROBE_Y, count=clicks, interval_ms=100)
    first_replayable = None
    if poller is not None:
        poller.join(timeout=150)
        outcome = replayable[0] if replayable else AssertionError("no answer from the poller")
        if isinstance(outcome, BaseException):
            raise outcome
        first_replayable = outcome
        browser.wait_for(page, TRACKER_IDLE, timeout=120)
    browser.wait_for(page, f"window.clickDelays.length === {clicks}", timeout=60)
    return Recording(
        page=page,
        cells=cells,
        session_id=session_id,
        load_s=load_s,
        first_replayable_s=first_replayable,
        click_delays_ms=browser.eval(page, "window.clickDelays"),
        task_s=browser.metrics(page)["TaskDuration"] - task_before,
        stats=browser.eval(page, TRACKER_STATS) if record else {},
    )


def stored_events(server: ServerProcess, session_id: str) -> list[dict[str, Any]]:
    """Every stored event of the session, through REST, page by page."""
    events: list[dict[str, Any]] = []
    while True:
        page = get_json(
            server.url(f"/sessions/{session_id}/events?from_index={len(events)}"), timeout=60
        )
        if not page["events"]:
            return events
        events += page["events"]
