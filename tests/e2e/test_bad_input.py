"""Every bad input gets its documented answer, and the server keeps serving
everyone else.

``test_bad_input`` runs each row of the table in docs/protocol.md ("Bad
input"), kept as data in ``e2e.bad_inputs``: beside a control tracker
session on another connection, it sends the bad input through a real
interface, checks the exact answer, that it was counted once in its metric,
that no connection task crashed, that the control session was acked all
along and that every event acked to any session reads back afterwards.
``test_the_doc_table_and_the_cases_agree`` keeps the doc and the cases
from drifting apart."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import pytest
import trio
from trio_websocket import open_websocket_url

from auth.tenants import ACME_READ, open_tracker, open_viewer, start
from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.bad_inputs import CASES, LIMITS, BadInput, Probe, packed
from e2e.clients import get_json, http, metric, recv_json, send_batches, start_session, ws_url
from e2e.control import ControlTracker, read_events
from e2e.rawws import client_frame, handshake, next_json, read_close
from replaywire import _core
from rrweb import batch_message, session_events, start_message

PROTOCOL_DOC = Path(__file__).parents[2] / "docs" / "protocol.md"
CODECS = ("rust", "wsproto")


def _cases() -> list[object]:
    """Each case on both WebSocket codecs, or once for those answered
    before any codec runs (HTTP)."""
    return [
        pytest.param(case, backend, id=f"{case.id}-{backend}" if case.codecs else case.id)
        for case in CASES
        for backend in (CODECS if case.codecs else CODECS[:1])
    ]


@pytest.mark.parametrize(("case", "ws_backend"), _cases())
async def test_bad_input(
    start_server,
    nursery: trio.Nursery,
    case: BadInput,
    ws_backend: str,  # noqa: F811  (parametrised here, not by the fixture)
) -> None:
    server = await start(start_server, **LIMITS)
    control = ControlTracker(server)
    await nursery.start(control.run)
    name, labels = case.metric.name, dict(case.metric.labels)
    counted = await metric(server, name, **labels)
    probe = Probe(server)
    with trio.fail_after(30):
        await case.send(probe)
        # Counted once (a close is counted just after its frame is written).
        while await metric(server, name, **labels) == counted:  # noqa: ASYNC110 - server state
            await trio.sleep(0.01)
    assert await metric(server, name, **labels) == counted + 1, case.metric
    assert await metric(server, "replaywire_task_crashes_total", task="connection") == 0
    # The session beside it was acked all along; nothing acked is lost.
    await control.finish()
    for session_id, events in probe.acked.items():
        assert await read_events(server, session_id) == events, session_id
    # And a newcomer is served.
    async with open_tracker(server, "acme") as ws:
        await start_session(ws, "newcomer")
        await send_batches(ws, "newcomer", list(session_events(20, seed=5)), batch=10)


def doc_rows() -> list[tuple[str, str, str]]:
    """(answer, metric, case id) of each row of the doc's bad-input table."""
    text = PROTOCOL_DOC.read_text()
    section = text[text.index("\n## Bad input\n") :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else None]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    out = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) == 5, row
        _, _, answer, metric_cell, test = cells
        out.append((answer.replace("`", ""), metric_cell.strip("`"), test.strip("`")))
    return out


def test_the_doc_table_and_the_cases_agree() -> None:
    """Every row of the doc has its case, in the same order, saying the same
    answer and metric; every case has its row."""
    rows = doc_rows()
    assert [row[2] for row in rows] == [case.id for case in CASES]
    for (answer, metric_cell, test), case in zip(rows, CASES, strict=True):
        words = re.findall(r"[\w./{}\[\]-]+", answer)
        assert all(word in words for word in case.answer.split()), (test, answer, case.answer)
        assert metric_cell == str(case.metric), (test, metric_cell, str(case.metric))


async def test_ping_is_answered_with_pong(server) -> None:
    stream, _ = await handshake(server.port)
    await stream.send_all(
        client_frame(_core.OP_PING, b"hello") + client_frame(_core.OP_CLOSE, b"\x03\xe8")
    )
    code, seen = await read_close(stream)
    assert code == 1000
    assert len(seen) == 1 and isinstance(seen[0], _core.WsPong) and seen[0].data == b"hello"
    await stream.aclose()


@pytest.mark.parametrize("codec", [1, 2], ids=["deflate", "zstd"])
async def test_compressed_tracker_batches_are_acked_and_stored(server, codec: int) -> None:
    events = list(session_events(500, seed=9))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "packed")
        for seq in range(10):
            message = batch_message("packed", seq, events[seq * 50 : seq * 50 + 50])
            await ws.send_message(packed(codec, message))
            assert (await recv_json(ws))["type"] == "ack"
    page = await get_json(server, "/sessions/packed/events?from_index=0&limit=1000")
    assert page["count"] == 500


async def test_max_frame_bytes_on_its_own(start_server, ws_backend: str) -> None:  # noqa: F811
    """MAX_FRAME_BYTES on its own: a 100 KB frame, under the 256 KiB message
    limit but over the 64 KiB frame limit, is answered payload_too_large by
    the Rust codec. The wsproto codec streams a frame's payload without its
    header, so it enforces MAX_MESSAGE_BYTES only and accepts it (the
    documented difference, docs/configuration.md "WS_BACKEND")."""
    server = await start_server(max_frame_bytes=64 * 1024, max_message_bytes=256 * 1024)
    big = b'{"type":3,"timestamp":1,"data":{"blob":"%b"}}' % (b"x" * 100_000)
    stream, head = await handshake(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    reply = partial(next_json, stream, _core.FrameDecoder(require_mask=False))

    await stream.send_all(client_frame(_core.OP_TEXT, start_message("frame").encode()))
    assert (await reply())["type"] == "session_started"
    await stream.send_all(client_frame(_core.OP_TEXT, batch_message("frame", 0, [big])))
    answer = await reply()
    if ws_backend == "rust":
        assert answer["data"]["code"] == "payload_too_large" and answer["data"]["seq"] == 0
    else:
        assert answer["type"] == "ack" and answer["data"]["seq"] == 0, answer
    await stream.aclose()


async def test_a_client_that_leaves_mid_request_crashes_nothing(server) -> None:
    """A request head cut short by the client closing its socket: the server
    counts it as malformed HTTP and has no one to answer; trying to must not
    end in a crashed connection task (it once did: the 400 hit a broken
    pipe)."""
    for _ in range(5):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Cut-Sh")
        await stream.aclose()
    with trio.fail_after(10):
        # The count lives in the server's connection tasks: a bounded wait.
        while await metric(server, "replaywire_protocol_errors_total", code="bad_http") < 5:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert await metric(server, "replaywire_task_crashes_total", task="connection") == 0


async def test_an_index_past_int64_reads_as_nothing(start_server) -> None:
    """Event indexes are int64 in storage and u64 in the ring buffer, but
    clients may ask for any: a fromIndex or from_index past them is an empty
    page, over WebSocket and REST, never a crashed connection (found by
    schemathesis: it was an OverflowError in the SQLite driver)."""
    server = await start(start_server)
    async with open_tracker(server, "acme") as ws:
        await start_session(ws, "ended")
        await send_batches(ws, "ended", list(session_events(20)), batch=10)
        await ws.send_message(json.dumps({"type": "session_end", "data": {"sessionId": "ended"}}))
        assert (await recv_json(ws))["type"] == "session_ended"
    async with open_viewer(server, ACME_READ) as viewer:
        for index in (2**63, 2**64 - 1):
            request = {"sessionId": "ended", "fromIndex": index}
            await viewer.send_message(json.dumps({"type": "get_session_events", "data": request}))
            page = await recv_json(viewer)
            assert (page["type"], page["data"]["count"]) == ("session_events", 0), page
        await viewer.send_message(json.dumps({"type": "viewer_join_session", "data": request}))
        # Nothing from there on: joined, then ended, as past the end of any session.
        assert [(await recv_json(viewer))["type"] for _ in range(2)] == [
            "viewer_joined",
            "session_ended",
        ]
    for index in (2**63, 10**30):
        status, _, body = await http(
            server,
            f"/sessions/ended/events?from_index={index}",
            headers={"Authorization": f"Bearer {ACME_READ}"},
        )
        assert status == 200 and json.loads(body)["count"] == 0, body
    assert await metric(server, "replaywire_task_crashes_total", task="connection") == 0
