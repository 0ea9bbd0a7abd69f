"""What recording costs a heavy page, in Chromium: for each page size, the
time until the page's full snapshot is replayable, how long clicks wait
for the main thread while the snapshot goes up, and the main-thread time
the tracker adds.

The page is tests/browser/pages/heavy.html (a table of N cells, the README's
one-line snippet with default options) against a replaywire on SQLite
with durable acks, as the browser tests run it. Each size is loaded twice
in the same run, recording and not (``data-auto="false"``: the script
loads but does not start), with the same clicks; the tracker's cost is
Chrome's ``TaskDuration`` of the first less the second.

    python benches/browser_pages.py --cells 1000,9000,30000,135000
    python benches/browser_pages.py --cells 9000 --throttle-kbps 1000
    python benches/browser_pages.py --cells 9000 --throttle-kbps 1000 \\
        --tracker-options 'data-compress="false"'

Needs what the browser tests need (Chromium, Node.js, the built JS).
Every load is bounded by the driver's timeouts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser.conftest import serve  # noqa: E402
from browser.harness import Browser, PageServer, get_json  # noqa: E402
from browser.heavy import record_heavy_page  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cells", default="1000,9000,30000,135000", help="page sizes, in table cells"
    )
    parser.add_argument(
        "--clicks", type=int, default=10, help="clicks sent while the snapshot goes up"
    )
    parser.add_argument(
        "--throttle-kbps", type=int, default=0, help="DevTools link throttling (0: off)"
    )
    parser.add_argument(
        "--tracker-options", default="", help="more data attributes, e.g. 'data-compress=\"false\"'"
    )
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        site = PageServer()
        site.values["TRACKER_OPTIONS"] = args.tracker_options
        server = serve(Path(tmp), site)
        browser = Browser(Path(tmp) / "driver.log")
        try:
            print(
                f"Chromium {browser.version}; throttle {args.throttle_kbps or 'off'} kbit/s;"
                f" tracker options: {args.tracker_options or 'defaults'}",
                flush=True,
            )
            for cells in (int(c) for c in args.cells.split(",")):
                bare = record_heavy_page(
                    browser,
                    server,
                    site,
                    f"bare-{cells}",
                    cells,
                    record=False,
                    clicks=args.clicks,
                    throttle_kbps=args.throttle_kbps,
                )
                browser.call("closePage", page=bare.page)
                rec = record_heavy_page(
                    browser,
                    server,
                    site,
                    f"rec-{cells}",
                    cells,
                    clicks=args.clicks,
                    throttle_kbps=args.throttle_kbps,
                )
                browser.call("closePage", page=rec.page)
                assert rec.session_id is not None
                info = get_json(server.url(f"/sessions/{rec.session_id}"))
                rows.append(
                    {
                        "cells": cells,
                        "stored_mb": info["byteCount"] / 1e6,
                        "load_s": rec.load_s,
                        "bare_load_s": bare.load_s,
                        "replayable_s": rec.first_replayable_s,
                        "click_p50_ms": statistics.median(rec.click_delays_ms),
                        "click_max_ms": max(rec.click_delays_ms),
                        "bare_click_max_ms": max(bare.click_delays_ms),
                        "task_s": rec.task_s,
                        "bare_task_s": bare.task_s,
                        "dropped": rec.stats["droppedEvents"],
                    }
                )
                print(rows[-1], flush=True)
        finally:
            browser.close()
            server.stop()
            site.close()

    print()
    print(
        "| cells | session stored | page load (no tracker) | first replayable"
        " | click wait p50 / max (no tracker: max) | main thread: recording / not / added |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        added = r["task_s"] - r["bare_task_s"]
        print(
            f"| {r['cells']:,} | {r['stored_mb']:.1f} MB"
            f" | {r['load_s']:.1f} s ({r['bare_load_s']:.1f} s)"
            f" | {r['replayable_s']:.1f} s"
            f" | {r['click_p50_ms']:.0f} / {r['click_max_ms']:.0f} ms"
            f" ({r['bare_click_max_ms']:.0f} ms)"
            f" | {r['task_s']:.2f} / {r['bare_task_s']:.2f} / {added:+.2f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
