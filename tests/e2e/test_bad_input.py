"""Every bad input gets its documented answer, and the server keeps serving
everyone else."""

from __future__ import annotations

import json
import struct
import zlib
from functools import partial

import pytest
import trio
import zstandard
from trio_websocket import open_websocket_url

from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import get_json, http, metric, recv_json, send_batches, start_session, ws_url
from e2e.rawws import client_frame, handshake, next_json, read_close
from replaywire import _core
from rrweb import batch_message, session_events, start_message


async def assert_still_serving(server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "healthy")
        await send_batches(ws, "healthy", list(session_events(50)))


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_message"),
        ('["an array"]', "invalid_message"),
        ('{"type":"session_start","data":{}}', "invalid_message"),
        ('{"type":"teleport","data":{}}', "unknown_message_type"),
        ('{"type":"viewer_join_session","data":{"sessionId":"x"}}', "not_allowed"),
        ('{"type":"session_start","data":{"sessionId":"nul\\u0000id"}}', "invalid_message"),
        (
            '{"type":"session_start","data":{"sessionId":"s","userAgent":"a\\u0000b"}}',
            "invalid_message",
        ),
        (
            '{"type":"events_batch","data":{"sessionId":"never-started","seq":0,"events":[]}}',
            "unknown_session",
        ),
    ],
)
async def test_bad_tracker_messages_get_error_frames(server, message: str, code: str) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await ws.send_message(message)
        reply = await recv_json(ws)
        assert reply["type"] == "error"
        assert reply["data"]["code"] == code
        assert reply["data"]["message"]
        # The connection stays usable.
        await start_session(ws, "after-error")
    metrics = await _metrics(server)
    assert f'replaywire_protocol_errors_total{{code="{code}"}} 1.0' in metrics


async def test_bad_events_name_the_batch_seq(server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "bad-events")
        good = list(session_events(3))
        for seq, events, code in [
            (0, [good[0], b"42"], "invalid_event"),
            (0, [b'{"type":"3","timestamp":1}'], "invalid_event"),
            (0, [b'{"type":3}'], "invalid_event"),
        ]:
            await ws.send_message(batch_message("bad-events", seq, events).decode())
            reply = await recv_json(ws)
            assert reply["data"]["code"] == code
            assert reply["data"]["seq"] == seq
        # Nothing of the refused batches was stored; seq 0 is still free.
        await ws.send_message(batch_message("bad-events", 0, good).decode())
        assert (await recv_json(ws))["type"] == "ack"
    page = await get_json(server, "/sessions/bad-events/events")
    assert page["count"] == 3


async def test_too_many_events_in_a_batch_is_payload_too_large(start_server) -> None:
    server = await start_server(max_events_per_batch=10)
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "big")
        await ws.send_message(batch_message("big", 0, list(session_events(11))).decode())
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "payload_too_large"
        assert reply["data"]["seq"] == 0
        assert "10" in reply["data"]["message"]


async def test_events_before_session_start(server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await ws.send_message(
            batch_message("x", 0, list(session_events(2))).decode().replace('"sessionId":"x",', "")
        )
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "unknown_session"


@pytest.mark.parametrize(
    ("frame", "close_code"),
    [
        (_core.encode_frame(_core.OP_TEXT, b'{"type":"x"}'), 1002),  # unmasked client frame
        (None, 1007),  # invalid UTF-8 in a text frame
        (None, 1002),  # reserved opcode
    ],
    ids=["unmasked", "invalid-utf8", "reserved-opcode"],
)
async def test_frame_violations_close_with_the_right_code(
    start_server, frame, close_code, request
) -> None:
    server = await start_server(max_frame_bytes=64 * 1024, max_message_bytes=256 * 1024)
    case = request.node.callspec.id  # "<ws backend>-<case>"
    if case.endswith("invalid-utf8"):
        frame = client_frame(_core.OP_TEXT, b'{"a":"\xff\xfe"}')
    elif case.endswith("reserved-opcode"):
        frame = _core.encode_client_frame(3, b"", b"abcd")
    stream, head = await handshake(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    await stream.send_all(frame)
    code, _ = await read_close(stream)
    assert code == close_code
    await stream.aclose()
    await assert_still_serving(server)
    assert f'replaywire_protocol_errors_total{{code="{close_code}"}}' in await _metrics(server)


async def test_ping_is_answered_with_pong(server) -> None:
    stream, _ = await handshake(server.port)
    await stream.send_all(
        client_frame(_core.OP_PING, b"hello") + client_frame(_core.OP_CLOSE, b"\x03\xe8")
    )
    code, seen = await read_close(stream)
    assert code == 1000
    assert len(seen) == 1 and isinstance(seen[0], _core.WsPong) and seen[0].data == b"hello"
    await stream.aclose()


@pytest.mark.parametrize(
    ("target", "version", "status"),
    [
        ("/ws?type=tracker", b"8", b"426"),
        ("/ws?type=spy", b"13", b"400"),
        ("/ws", b"13", b"400"),
    ],
)
async def test_bad_upgrades_are_refused(server, target: str, version: bytes, status: bytes) -> None:
    stream, head = await handshake(server.port, target, version=version)
    assert head.split(b" ")[1] == status, head
    if status == b"426":
        assert b"sec-websocket-version: 13" in head.lower()
    await stream.aclose()


async def _metrics(server) -> str:
    from e2e.clients import http

    status, _, body = await http(server, "/metrics")
    assert status == 200
    return body.decode()


async def test_binary_message_is_refused_politely(server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        await ws.send_message(b'{"type":"session_start"}')
        reply = json.loads(await ws.get_message())
        assert reply["data"]["code"] == "invalid_message"


def compressed_message(codec: int, message: bytes, *, raw_length: int | None = None) -> bytes:
    """A compressed tracker message (docs/protocol.md): header, then the JSON."""
    if codec == 1:
        packer = zlib.compressobj(wbits=-15)
        body = packer.compress(message) + packer.flush()
    else:
        body = zstandard.ZstdCompressor().compress(message)
    length = len(message) if raw_length is None else raw_length
    return struct.pack(">BBHI", 1, codec, 0, length) + body


@pytest.mark.parametrize("codec", [1, 2], ids=["deflate", "zstd"])
async def test_compressed_tracker_batches_are_acked_and_stored(server, codec: int) -> None:
    events = list(session_events(500, seed=9))
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "packed")
        for seq in range(10):
            message = batch_message("packed", seq, events[seq * 50 : seq * 50 + 50])
            await ws.send_message(compressed_message(codec, message))
            assert (await recv_json(ws))["type"] == "ack"
        # Refused: a length over the limit (before decompressing), a length
        # that does not match, and bytes that are not compressed data.
        too_big = compressed_message(codec, b"{}", raw_length=server.config.max_message_bytes + 1)
        lying = compressed_message(codec, message, raw_length=len(message) + 5)
        garbage = struct.pack(">BBHI", 1, codec, 0, 100) + b"\x00not compressed at all"
        # A zip bomb: 8 MiB of zeros announced as 1,000 bytes.
        bomb = compressed_message(codec, bytes(8 << 20), raw_length=1000)
        for frame, code in (
            (too_big, "payload_too_large"),
            (lying, "invalid_compression"),
            (garbage, "invalid_compression"),
            (bomb, "invalid_compression"),
        ):
            await ws.send_message(frame)
            reply = await recv_json(ws)
            assert reply["type"] == "error" and reply["data"]["code"] == code, reply
    page = await get_json(server, "/sessions/packed/events?from_index=0&limit=1000")
    assert page["count"] == 500
    await assert_still_serving(server)


@pytest.mark.parametrize("fragments", [1, 9], ids=["one-frame", "fragmented"])
async def test_a_message_over_the_limit_is_answered_and_the_session_goes_on(
    start_server, fragments: int
) -> None:
    """Too large is never silent: ``payload_too_large`` with the limit and
    the batch's seq, kept in session_errors and counted; the connection and
    the session continue, and the tracker resends that seq."""
    server = await start_server(max_frame_bytes=64 * 1024, max_message_bytes=256 * 1024)
    events = list(session_events(20, seed=3))
    huge = b'{"type":3,"timestamp":1,"data":{"blob":"%b"}}' % (b"x" * 300_000)
    oversized = batch_message("big", 1, [huge])
    stream, head = await handshake(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    reply = partial(next_json, stream, _core.FrameDecoder(require_mask=False))

    await stream.send_all(client_frame(_core.OP_TEXT, start_message("big").encode()))
    assert (await reply())["type"] == "session_started"
    await stream.send_all(client_frame(_core.OP_TEXT, batch_message("big", 0, events[:10])))
    assert (await reply())["type"] == "ack"
    size = -(-len(oversized) // fragments)
    parts = [oversized[i : i + size] for i in range(0, len(oversized), size)]
    for i, part in enumerate(parts):
        opcode = _core.OP_TEXT if i == 0 else _core.OP_CONTINUATION
        await stream.send_all(client_frame(opcode, part, fin=i == len(parts) - 1))
    error = await reply()
    assert error["type"] == "error", error
    assert error["data"]["code"] == "payload_too_large" and error["data"]["seq"] == 1
    assert "262144" in error["data"]["message"]
    # The same seq again, without the oversized event: accepted.
    await stream.send_all(client_frame(_core.OP_TEXT, batch_message("big", 1, events[10:])))
    ack = await reply()
    assert ack["type"] == "ack" and ack["data"]["seq"] == 1, ack
    await stream.aclose()
    page = await get_json(server, "/sessions/big/events?from_index=0&limit=100")
    assert page["count"] == 20
    await server.writer.flush()
    [recorded] = server.storage.session_errors("default:big")
    assert (recorded.code, recorded.seq) == ("payload_too_large", 1)
    metrics = (await http(server, "/metrics"))[2].decode()
    assert 'replaywire_protocol_errors_total{code="payload_too_large"} 1.0' in metrics
    await assert_still_serving(server)


async def test_max_frame_bytes_on_its_own(start_server, ws_backend: str) -> None:  # noqa: F811
    """MAX_FRAME_BYTES on its own: a 100 KB frame, under the 256 KiB message
    limit but over the 64 KiB frame limit, is answered payload_too_large by
    the Rust codec. The wsproto codec streams a frame's payload without its
    header, so it enforces MAX_MESSAGE_BYTES only and accepts it (the
    documented difference, README "WS_BACKEND")."""
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
