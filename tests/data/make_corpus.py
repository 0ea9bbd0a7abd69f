"""A deterministic, realistic rrweb corpus for the codec tests and benchmarks.

``tests/rrweb.py`` makes small, uniform events for protocol and load tests;
compression ratios measured on them would say little. This module models
what a recorder sends from a real page, a shop's product listing:

- a meta event and a full snapshot of the serialized DOM (rrweb's node
  format: document, doctype, elements with their real attributes (utility
  class lists, ``data-*``, inline ``style``, ``href``/``src`` with ids and
  hashes, ``srcset``), SVG icons with path data, a ``<style>`` element
  holding the page's CSS, the whitespace text nodes between tags, and
  product names and descriptions from a word list);
- then incremental snapshots in the proportions recorders emit them: mouse
  moves (batched positions along smooth paths), scrolls, clicks and focus
  changes, typed input (successive prefixes of a search), and DOM mutations
  (hover classes and inline style changes, text updates, toasts and
  dropdowns added and removed as serialized subtrees).

Each event is one compact JSON object, as a tracker sends it. Everything
follows from the seed (the same seed gives the same bytes on every Python
>= 3.11); nothing is written to the repository. Run it to see the sizes, or
write a corpus out to look at it:

    python tests/data/make_corpus.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shop_page import WORDS, Page

META, FULL_SNAPSHOT, INCREMENTAL = 4, 2, 3
START_TS = 1_714_564_800_000


def dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


class _Recorder:
    """The incremental events of one visit to a page."""

    def __init__(self, rng: random.Random, page: Page, ts: int) -> None:
        self.rng = rng
        self.page = page
        self.ts = ts
        self.x, self.y = 720, 450
        self.scroll_y = 0
        self.query = ""
        self.target = rng.choice(page.card_ids)
        self.added: list[tuple[int, int]] = []  # (parent id, node id) of added subtrees

    def _event(self, data: dict[str, Any]) -> bytes:
        return dumps({"type": INCREMENTAL, "data": data, "timestamp": self.ts})

    def mouse_move(self) -> bytes:
        positions = []
        n = self.rng.randint(3, 10)
        tx, ty = self.rng.randint(0, 1440), self.rng.randint(0, 900)
        for i in range(n):
            self.x += (tx - self.x) // (n - i) + self.rng.randint(-6, 6)
            self.y += (ty - self.y) // (n - i) + self.rng.randint(-6, 6)
            if self.rng.random() < 0.1:
                self.target = self.rng.choice(self.page.card_ids + self.page.button_ids)
            positions.append(
                {
                    "x": self.x,
                    "y": self.y,
                    "id": self.target,
                    "timeOffset": -(n - 1 - i) * 50 - self.rng.randint(0, 15),
                }
            )
        return self._event({"source": 1, "positions": positions})

    def scroll(self) -> bytes:
        self.scroll_y = max(
            0, self.scroll_y + self.rng.choice((-1, 1, 1, 1)) * self.rng.randint(40, 600)
        )
        return self._event({"source": 3, "id": 1, "x": 0, "y": self.scroll_y})

    def click(self) -> list[bytes]:
        target = self.rng.choice(self.page.button_ids + self.page.checkbox_ids)
        events = [
            self._event(
                {
                    "source": 2,
                    "type": kind,
                    "id": target,
                    "x": self.x,
                    "y": self.y,
                    "pointerType": 0,
                }
            )
            for kind in (1, 0, 2)  # mousedown, mouseup, click
        ]
        if target in self.page.checkbox_ids:
            events.append(
                self._event(
                    {"source": 5, "text": "on", "isChecked": self.rng.random() < 0.5, "id": target}
                )
            )
        return events

    def type_key(self) -> list[bytes]:
        events = []
        if not self.query:
            events.append(self._event({"source": 2, "type": 5, "id": self.page.search_id}))  # focus
        self.query = (self.query + self.rng.choice(WORDS)[: self.rng.randint(1, 3)])[:40]
        events.append(
            self._event(
                {"source": 5, "text": self.query, "isChecked": False, "id": self.page.search_id}
            )
        )
        if self.rng.random() < 0.15:
            self.query = ""
        return events

    def mutation(self) -> bytes:
        rng = self.rng
        kind = rng.random()
        data: dict[str, Any] = {
            "source": 0,
            "texts": [],
            "attributes": [],
            "removes": [],
            "adds": [],
        }
        if kind < 0.45:  # hover: class or inline style changes on a card and its button
            card = rng.choice(self.page.card_ids)
            data["attributes"] = [
                {"id": card, "attributes": {"class": f"group relative {self.page.classes(5)}"}},
                {
                    "id": card + rng.randint(1, 8),
                    "attributes": {
                        "style": {
                            "transform": f"translateY(-{rng.randint(1, 4)}px)",
                            "opacity": f"0.{rng.randint(80, 99)}",
                        }
                    },
                },
            ]
        elif kind < 0.6:  # text update: cart counter, a title in a carousel
            target = (
                self.page.cart_count_id if rng.random() < 0.5 else rng.choice(self.page.text_ids)
            )
            value = (
                str(rng.randint(0, 9))
                if target == self.page.cart_count_id
                else self.page.words(2, 5).title()
            )
            data["texts"] = [{"id": target, "value": value}]
        elif kind < 0.8 or not self.added:  # a toast or dropdown appears
            parent = rng.choice(self.page.container_ids)
            subtree = self.page.component(self.query)
            self.added.append((parent, subtree["id"]))
            data["adds"] = [{"parentId": parent, "nextId": None, "node": subtree}]
        else:  # it goes away
            parent, node = self.added.pop(rng.randrange(len(self.added)))
            data["removes"] = [{"parentId": parent, "id": node}]
        return self._event(data)

    def events(self) -> Iterator[bytes]:
        """Incremental events, forever."""
        rng = self.rng
        while True:
            self.ts += rng.choice((16, 17, 33, 50, 50, 100, 120, 250, 500, 1200))
            kind = rng.random()
            if kind < 0.38:
                yield self.mouse_move()
            elif kind < 0.52:
                yield self.scroll()
            elif kind < 0.60:
                yield from self.click()
            elif kind < 0.68:
                yield from self.type_key()
            elif kind < 0.995:
                yield self.mutation()
            else:
                yield self._event(
                    {"source": 4, "width": rng.choice((1440, 1280, 1024)), "height": 900}
                )


def meta_event(ts: int, href: str = "https://shop.example/collections/all") -> bytes:
    return dumps(
        {"type": META, "data": {"href": href, "width": 1440, "height": 900}, "timestamp": ts}
    )


def full_snapshot(seed: int, cards: int = 48, ts: int = START_TS) -> bytes:
    """A full snapshot of a listing page with ``cards`` products: ~120 KB
    for 48, ~3 MB for 500."""
    page = Page(random.Random(seed), cards)
    return dumps(
        {
            "type": FULL_SNAPSHOT,
            "data": {"node": page.document(), "initialOffset": {"left": 0, "top": 0}},
            "timestamp": ts,
        }
    )


def session(seed: int, count: int, cards: int = 48) -> list[bytes]:
    """``count`` events of one visit: meta, full snapshot, incremental events."""
    rng = random.Random(seed)
    page = Page(random.Random(rng.random()), cards)
    snapshot = {
        "type": FULL_SNAPSHOT,
        "data": {"node": page.document(), "initialOffset": {"left": 0, "top": 0}},
        "timestamp": START_TS + 1,
    }
    out = [meta_event(START_TS), dumps(snapshot)]
    recorder = _Recorder(rng, page, START_TS + 1)
    for event in recorder.events():
        if len(out) >= count:
            break
        out.append(event)
    return out[:count]


def incremental_events(seeds: range | list[int], per_session: int) -> list[bytes]:
    """The incremental events of several visits, one after the other."""
    events: list[bytes] = []
    for seed in seeds:
        events += session(seed, per_session + 2)[2:]
    return events


def join(events: list[bytes]) -> bytes:
    """Events as one JSON array, as chunks are stored and deltas sent."""
    return b"[" + b",".join(events) + b"]"


def chunks(events: list[bytes], size: int = 50) -> list[bytes]:
    """Consecutive groups of ``size`` events: the storage case."""
    return [join(events[i : i + size]) for i in range(0, len(events), size)]


def deltas(events: list[bytes], seed: int = 0, lo: int = 3, hi: int = 10) -> list[bytes]:
    """Consecutive groups of ``lo`` to ``hi`` events: what a viewer gets per
    tick."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(events):
        n = rng.randint(lo, hi)
        out.append(join(events[i : i + n]))
        i += n
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the corpus files into this folder")
    args = parser.parse_args()
    events = incremental_events(range(1, 5), 2500)
    parts = {
        "session.jsonl": b"\n".join(session(1, 2000)) + b"\n",
        "chunks.jsonl": b"\n".join(chunks(events)) + b"\n",
        "deltas.jsonl": b"\n".join(deltas(events)) + b"\n",
        "snapshot.json": full_snapshot(7, cards=500),
    }
    for name, data in parts.items():
        print(f"{name:<14} {len(data) / 1e6:8.2f} MB")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / name).write_bytes(data)
    sizes = [len(e) for e in events]
    print(f"incremental events: {len(events)}, mean {sum(sizes) / len(sizes):.0f} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
