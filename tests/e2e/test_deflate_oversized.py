"""A compressed message over MAX_MESSAGE_BYTES is skipped and answered, never
closed with 1009: the server requires ``client_no_context_takeover``
from every client that negotiates permessage-deflate, even one that did not
offer it (RFC 7692 section 7.1.1.1), so no later message depends on the
skipped one's bytes.

The client is the ``websockets`` library as it comes: it offers
``permessage-deflate; client_max_window_bits`` (no
``client_no_context_takeover``), as browsers do, and compresses every
message it sends."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import trio
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.sync.client import connect

from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import events_of, http, metric, ws_url
from rrweb import batch_message, session_events, start_message

LIMIT = 200_000  # MAX_MESSAGE_BYTES of these servers


def oversized_events() -> dict[str, bytes]:
    """One event each that makes a batch over LIMIT: one that compresses to
    almost nothing (over the limit only once inflated), one that does not
    compress (over it on the wire as well)."""
    repetitive = b'{"type":2,"data":{"html":"' + b"<td>cell</td>" * 40_000 + b'"},"timestamp":1}'
    noise = base64.b64encode(random.Random(3).randbytes(300_000))
    incompressible = b'{"type":2,"data":{"blob":"' + noise + b'"},"timestamp":1}'
    return {"repetitive": repetitive, "incompressible": incompressible}


async def test_an_oversized_compressed_message_is_answered_and_the_connection_goes_on(
    start_server: Any,
    ws_backend: str,  # noqa: F811  (the fixture imported above)
) -> None:
    server = await start_server(max_message_bytes=LIMIT, max_event_bytes=LIMIT - 10_000)
    events = list(session_events(60, seed=11))
    oversized = oversized_events()
    assert all(len(e) > LIMIT for e in oversized.values())

    def run_client() -> tuple[str | None, PerMessageDeflate, list[dict[str, Any]]]:
        answers = []
        with connect(ws_url(server), max_size=None) as ws:  # the library's default offer
            [extension] = ws.protocol.extensions
            assert isinstance(extension, PerMessageDeflate)
            ws.send(start_message("big"))
            answers.append(json.loads(ws.recv(timeout=10)))
            ws.send(batch_message("big", 0, events[:20]).decode())
            answers.append(json.loads(ws.recv(timeout=10)))
            for seq, event in enumerate(oversized.values(), start=1):
                ws.send(
                    batch_message(
                        "big", seq, [*events[10 + seq * 10 : 15 + seq * 10], event]
                    ).decode()
                )
                answers.append(json.loads(ws.recv(timeout=10)))
            # The tracker resends those seqs without the oversized event, then
            # goes on: all compressed by a client told not to keep its context.
            ws.send(batch_message("big", 1, events[20:30]).decode())
            ws.send(batch_message("big", 2, events[30:40]).decode())
            ws.send(batch_message("big", 3, events[40:]).decode())
            answers += [json.loads(ws.recv(timeout=10)) for _ in range(3)]
            header = ws.response.headers.get("Sec-WebSocket-Extensions")
        return header, extension, answers

    header, extension, answers = await trio.to_thread.run_sync(run_client)
    assert header == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " client_max_window_bits=15"
    )
    assert extension.local_no_context_takeover  # the client accepted the requirement
    assert answers[0]["type"] == "session_started"
    assert answers[1] == {"type": "ack", "data": {"sessionId": "big", "seq": 0}}
    inflated, on_the_wire = answers[2:4]
    for answer in (inflated, on_the_wire):
        assert answer["type"] == "error", answers
        assert answer["data"]["code"] == "payload_too_large", answers
    # The seq is read from the first inflated bytes of a message that grew
    # past the limit while being inflated ...
    assert inflated["data"]["seq"] == 1, inflated
    # ... and for one over the limit on the wire, by wsproto, which inflates
    # it up to the limit; the Rust codec skips its wire bytes uninflated, so
    # it has no seq to tell (docs/protocol.md, "Compression").
    if ws_backend == "wsproto":
        assert on_the_wire["data"]["seq"] == 2, on_the_wire
    else:
        assert "seq" not in on_the_wire["data"], on_the_wire
    assert [a["type"] for a in answers[4:]] == ["ack"] * 3
    assert [a["data"]["seq"] for a in answers[4:]] == [1, 2, 3]

    status, _, body = await http(server, "/sessions/big/events?limit=1000")
    assert status == 200
    assert events_of(body) == events
    assert await metric(server, "replaywire_protocol_errors_total", code="payload_too_large") == 2
    assert await metric(server, "replaywire_ws_closes_total", code="1009") == 0
