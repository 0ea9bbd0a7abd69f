"""What a tracker sends around its close frame, or before a protocol
violation, is answered the same however TCP splits it (both codecs, real
server, raw sockets).

Each case runs twice: all bytes in one write (so the server reads them in
one ``receive_some``), and in several writes, split inside the frames
(``RawTracker.write``).

- A close frame followed by more bytes is answered with 1000: what follows
  a close is ignored (RFC 6455 section 5.5.1), it is not a protocol error.
- Messages completed before a violation in the same read are answered
  (acked) before the connection is failed.
- Messages completed in the same read as the peer's close are answered
  before the close reply.

Both ack modes: on receipt (``ACK_MODE=received``), and durable, where an
ack waits for the writer's commit in another task, which must still send it
before the close is answered.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import get_json
from e2e.rawtracker import open_tracker
from e2e.rawws import client_frame
from replaywire import Server, _core
from rrweb import batch_message, session_events

T, PING, CLOSE = _core.OP_TEXT, _core.OP_PING, _core.OP_CLOSE
CLOSE_1000 = client_frame(CLOSE, struct.pack(">H", 1000))
WRITES = pytest.mark.parametrize("writes", [1, 5], ids=["one-write", "several-writes"])
ACK_MODES = pytest.mark.parametrize("ack_mode", ["received", "durable"])


def batch(session_id: str, seq: int, events: list[bytes]) -> bytes:
    return client_frame(T, batch_message(session_id, seq, events))


async def stored(server: Server, session_id: str) -> list[Any]:
    await server.writer.flush()
    page = await get_json(server, f"/sessions/{session_id}/events?from_index=0&limit=100")
    return page["events"]  # type: ignore[no-any-return]


@WRITES
async def test_bytes_after_the_close_frame_are_ignored(server: Server, writes: int) -> None:
    """Close, then a ping and a frame with a reserved opcode: 1000, no pong."""
    async with open_tracker(server, "close-then-more") as tracker:
        junk = _core.encode_client_frame(3, b"", b"abcd")
        await tracker.write(CLOSE_1000 + client_frame(PING, b"late") + junk, writes)
        assert await tracker.close_code() == 1000
        assert tracker.events == []


@ACK_MODES
@WRITES
async def test_messages_before_a_violation_are_answered_first(
    start_server, writes: int, ack_mode: str
) -> None:
    """Two batches, then an unmasked frame: both acked (and stored), then 1002."""
    server = await start_server(ack_mode=ack_mode)
    async with open_tracker(server, "then-broken") as tracker:
        events = list(session_events(10, seed=3))
        data = batch("then-broken", 0, events[:5]) + batch("then-broken", 1, events[5:])
        await tracker.write(data + _core.encode_frame(T, b"{}"), writes)
        for seq in (0, 1):
            assert await tracker.reply() == {
                "type": "ack",
                "data": {"sessionId": "then-broken", "seq": seq},
            }
        assert await tracker.close_code() == 1002
    assert len(await stored(server, "then-broken")) == 10


@ACK_MODES
@WRITES
async def test_messages_before_the_close_are_answered_first(
    start_server, writes: int, ack_mode: str
) -> None:
    """A batch and the close frame: the batch is acked, then the close answered."""
    server = await start_server(ack_mode=ack_mode)
    async with open_tracker(server, "then-closed") as tracker:
        events = list(session_events(5, seed=4))
        await tracker.write(batch("then-closed", 0, events) + CLOSE_1000, writes)
        assert await tracker.reply() == {
            "type": "ack",
            "data": {"sessionId": "then-closed", "seq": 0},
        }
        assert await tracker.close_code() == 1000
    assert len(await stored(server, "then-closed")) == 5
