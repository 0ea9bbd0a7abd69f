"""rrweb-shaped events for tests and benchmarks.

The shapes follow rrweb's event types (2 full snapshot, 3 incremental
snapshot, 4 meta) and sizes seen in real recordings: a meta event, a full
snapshot of a nested DOM, then mostly mouse moves, scrolls, inputs and DOM
mutations of ~100-400 bytes. Deterministic for a given seed.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

META, FULL_SNAPSHOT, INCREMENTAL = 4, 2, 3


def _node(rng: random.Random, next_id: list[int], depth: int) -> dict[str, Any]:
    next_id[0] += 1
    node_id = next_id[0]
    if depth == 0 or rng.random() < 0.3:
        return {"type": 3, "textContent": "lorem ipsum dolor " * rng.randint(1, 4), "id": node_id}
    tag = rng.choice(["div", "span", "section", "ul", "li", "a", "button", "p"])
    return {
        "type": 2,
        "tagName": tag,
        "attributes": {"class": f"c{rng.randint(0, 50)} grid-item", "data-testid": f"n{node_id}"},
        "childNodes": [_node(rng, next_id, depth - 1) for _ in range(rng.randint(1, 4))],
        "id": node_id,
    }


def meta(ts: float, href: str = "https://shop.example/checkout") -> dict[str, Any]:
    return {"type": META, "data": {"href": href, "width": 1440, "height": 900}, "timestamp": ts}


def full_snapshot(ts: float, rng: random.Random, depth: int = 5) -> dict[str, Any]:
    root = {"type": 0, "childNodes": [_node(rng, [1], depth)], "id": 1}
    return {
        "type": FULL_SNAPSHOT,
        "data": {"node": root, "initialOffset": {"left": 0, "top": 0}},
        "timestamp": ts,
    }


def huge_full_snapshot(ts: float, nbytes: int, *, seed: int = 1) -> bytes:
    """A full snapshot of about ``nbytes`` as real pages make them: a deep
    DOM, a ``<style>`` with the page's CSS inlined (rrweb inlines
    stylesheets; very repetitive) and an ``<img>`` whose ``src`` is a data
    URL of a photo (base64 of incompressible bytes), about half each."""
    rng = random.Random(seed)
    rule = ".grid-item-%d{display:flex;margin:0 4px;color:#33%02x66;font:14px/1.4 Inter,sans-serif}"
    css_parts, size = [], 0
    while size < nbytes // 2:
        part = rule % (len(css_parts), len(css_parts) % 256)
        css_parts.append(part)
        size += len(part)
    photo = base64.b64encode(rng.randbytes(max(0, (nbytes - size) * 3 // 4 - 64 * 1024))).decode()
    body = _node(rng, [100], 8)
    root = {
        "type": 0,
        "id": 1,
        "childNodes": [
            {
                "type": 2,
                "tagName": "html",
                "id": 2,
                "attributes": {},
                "childNodes": [
                    {
                        "type": 2,
                        "tagName": "style",
                        "id": 3,
                        "attributes": {"_cssText": "".join(css_parts)},
                        "childNodes": [],
                    },
                    {
                        "type": 2,
                        "tagName": "img",
                        "id": 4,
                        "attributes": {"src": "data:image/jpeg;base64," + photo},
                        "childNodes": [],
                    },
                    body,
                ],
            }
        ],
    }
    event = {
        "type": FULL_SNAPSHOT,
        "data": {"node": root, "initialOffset": {"left": 0, "top": 0}},
        "timestamp": ts,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def incremental(ts: float, rng: random.Random) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.6:  # mouse move, ~230 bytes
        positions = [
            {
                "x": rng.randint(0, 1440),
                "y": rng.randint(0, 900),
                "id": rng.randint(1, 400),
                "timeOffset": -i * 16,
            }
            for i in range(5)
        ]
        data: dict[str, Any] = {"source": 1, "positions": positions}
    elif kind < 0.75:
        data = {"source": 3, "id": rng.randint(1, 400), "x": 0, "y": rng.randint(0, 5000)}
    elif kind < 0.9:
        data = {
            "source": 5,
            "text": "4111 1111 " * rng.randint(1, 3),
            "isChecked": False,
            "id": rng.randint(1, 400),
        }
    else:
        data = {
            "source": 0,
            "texts": [],
            "attributes": [
                {"id": rng.randint(1, 400), "attributes": {"class": "grid-item active"}}
            ],
            "removes": [],
            "adds": [
                {
                    "parentId": rng.randint(1, 400),
                    "nextId": None,
                    "node": {"type": 3, "textContent": "added", "id": rng.randint(400, 9000)},
                }
            ],
        }
    return {"type": INCREMENTAL, "data": data, "timestamp": ts}


def session_events(
    count: int, *, seed: int = 1, start_ts: float = 1_700_000_000_000.0, checkout_every: int = 0
) -> Iterator[bytes]:
    """``count`` events as raw JSON bytes: meta + full snapshot first, and a
    fresh meta + full snapshot every ``checkout_every`` events when set."""
    rng = random.Random(seed)
    ts = start_ts
    i = 0
    while i < count:
        if i == 0 or (checkout_every and i % checkout_every == 0):
            for event in (meta(ts), full_snapshot(ts, rng)):
                if i < count:
                    yield json.dumps(event, separators=(",", ":")).encode()
                    i += 1
            continue
        ts += rng.randint(5, 60)
        yield json.dumps(incremental(ts, rng), separators=(",", ":")).encode()
        i += 1


def batch_message(session_id: str, seq: int | None, events: list[bytes]) -> bytes:
    """An ``events_batch`` text message with the events spliced in raw."""
    head = b'{"type":"events_batch","data":{"sessionId":%b,' % json.dumps(session_id).encode()
    if seq is not None:
        head += b'"seq":%d,' % seq
    return head + b'"events":[' + b",".join(events) + b"]}}"


def start_message(session_id: str, **extra: Any) -> str:
    data = {
        "sessionId": session_id,
        "userId": "user-42",
        "url": "https://shop.example/checkout",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
        "viewport": {"width": 1440, "height": 900, "devicePixelRatio": 2},
        "startTime": 1_700_000_000_000,
        "referrer": "https://search.example/",
        "timeZone": "Europe/Berlin",
        **extra,
    }
    return json.dumps({"type": "session_start", "data": data})
