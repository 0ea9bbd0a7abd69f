"""A frame header announcing far more than ``MAX_MESSAGE_BYTES`` is closed
with 1009 at the header, on both codecs, instead of being read and
discarded for as long as the peer keeps sending (real server, raw sockets).

A message over the limit is skipped and answered ``payload_too_large`` as
long as its headers announce at most ``SKIP_CEILING_FACTOR`` times the
limit; ``test_both_codecs_draw_the_line_at_the_same_length`` checks the
Python constant (which the wsproto codec uses) against the Rust codec's.
"""

from __future__ import annotations

import struct

import pytest

from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.rawtracker import open_tracker
from e2e.rawws import client_frame
from replaywire import _core
from replaywire.ws.connection import SKIP_CEILING_FACTOR

LIMIT = 64 * 1024  # MAX_MESSAGE_BYTES and MAX_FRAME_BYTES of these servers
T, B, C = _core.OP_TEXT, _core.OP_BINARY, _core.OP_CONTINUATION
MASK = b"\x5a\xc3\x0f\x96"
WRITES = pytest.mark.parametrize("writes", [1, 4], ids=["one-write", "several-writes"])


def header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """A masked client frame header announcing ``length`` bytes (the
    shortest length form), without its payload."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack(">BB", first, 0x80 | length) + MASK
    if length < 1 << 16:
        return struct.pack(">BBH", first, 0x80 | 126, length) + MASK
    return struct.pack(">BBQ", first, 0x80 | 127, length) + MASK


@WRITES
async def test_a_header_announcing_a_terabyte_is_closed_with_1009(
    start_server, writes: int
) -> None:
    """2^40 bytes announced, a few sent: 1009 at once, not silence."""
    server = await start_server(max_message_bytes=LIMIT, max_frame_bytes=LIMIT)
    async with open_tracker(server, "terabyte") as tracker:
        await tracker.write(header(T, 1 << 40) + b"x" * 100, writes)
        assert await tracker.close_code() == 1009


@WRITES
async def test_fragments_announcing_past_the_ceiling_are_closed_with_1009(
    start_server, writes: int
) -> None:
    """Fragments each under the frame limit, adding up past the ceiling:
    1009 at the header that takes the message past it, before its payload."""
    server = await start_server(max_message_bytes=LIMIT, max_frame_bytes=LIMIT)
    fragment = client_frame(C, b" " * LIMIT, fin=False)
    data = client_frame(T, b" " * LIMIT, fin=False) + fragment * (SKIP_CEILING_FACTOR - 1)
    async with open_tracker(server, "fragments") as tracker:
        await tracker.write(data + header(C, 1), writes)
        assert await tracker.close_code() == 1009


@pytest.mark.parametrize("over", [0, 1], ids=["at-the-ceiling", "one-past"])
async def test_both_codecs_draw_the_line_at_the_same_length(start_server, over: int) -> None:
    """Exactly the ceiling is skipped and answered; one byte more is 1009."""
    server = await start_server(max_message_bytes=LIMIT, max_frame_bytes=LIMIT * 8)
    length = SKIP_CEILING_FACTOR * LIMIT + over
    async with open_tracker(server, "line") as tracker:
        await tracker.write(header(B, length), 1)
        if over:
            assert await tracker.close_code() == 1009
            return
        await tracker.write(bytes(length), 1)
        reply = await tracker.reply()
        assert (reply["type"], reply["data"]["code"]) == ("error", "payload_too_large"), reply
