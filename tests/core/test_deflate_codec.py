"""permessage-deflate in the frame codec, checked against CPython's zlib.

Hypothesis round trips both ways: messages compressed the way a client
does it (``zlib.compressobj(wbits=-N)``, a sync flush, the ``00 00 ff ff``
tail removed; context kept or not), fragmented and read in random pieces,
decode through the Rust ``FrameDecoder``; frames from the Rust encoders
inflate with ``zlib.decompressobj`` once the tail is put back. Then the
errors, and :meth:`WebSocket.encode_message`'s choice of frame.
"""

from __future__ import annotations

import zlib

import pytest
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from core.test_ws_codec import as_tuples, feed_in_chunks, parse_frames
from replaywire._core import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    FrameDecoder,
    WebSocketError,
    encode_binary_deflated,
    encode_client_frame,
    encode_text_deflated,
)
from replaywire.ws import DeflateParams, WebSocket
from replaywire.ws.extensions import MIN_COMPRESS_BYTES
from rrweb import batch_message, session_events

TAIL = b"\x00\x00\xff\xff"
RSV1 = 0b100
masks = st.binary(min_size=4, max_size=4)
unicode = st.characters(exclude_categories=["Cs"])

# Payloads that compress (repeated JSON-ish text) and payloads that do not.
payloads = (
    st.binary(max_size=400)
    | st.text(unicode, max_size=300).map(str.encode)
    | st.builds(
        lambda pattern, n: pattern * n,
        st.sampled_from([b'{"type":3,"x":1},', b"abc", "κόσμε ".encode()]),
        st.integers(0, 3000),
    )
)


def client_compress(compressor: zlib._Compress, data: bytes) -> bytes:
    """What a browser sends for one message (RFC 7692 section 7.2.1)."""
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def server_inflate(frame_payload: bytes, wbits: int = 15) -> bytes:
    """What a client does with one compressed server message (section 7.2.2)."""
    return zlib.decompressobj(wbits=-wbits).decompress(frame_payload + TAIL)


@st.composite
def compressed_streams(
    draw: st.DrawFn,
) -> tuple[bytes, list[tuple[object, ...]], int, bool]:
    """Masked frames of several messages, most compressed by one client
    compressor (window ``bits``, context kept unless ``no_takeover``), each
    fragmented at random points with pings between fragments."""
    bits = draw(st.integers(9, 15))
    no_takeover = draw(st.booleans())
    compressor = zlib.compressobj(6, zlib.DEFLATED, -bits)
    data = bytearray()
    expected: list[tuple[object, ...]] = []
    for _ in range(draw(st.integers(1, 4))):
        is_text = draw(st.booleans())
        payload = draw(payloads)
        if is_text:
            payload = payload.decode("utf-8", "replace").encode()
        compressed = draw(st.booleans()) or len(payload) > 1000
        if compressed:
            if no_takeover:
                compressor = zlib.compressobj(6, zlib.DEFLATED, -bits)
            wire = client_compress(compressor, payload)
        else:
            wire = payload
        cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=3)))
        pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
        for i, piece in enumerate(pieces):
            first = i == 0
            opcode = (OP_TEXT if is_text else OP_BINARY) if first else OP_CONTINUATION
            last = i == len(pieces) - 1
            rsv = RSV1 if compressed and first else 0
            data += encode_client_frame(opcode, piece, draw(masks), fin=last, rsv=rsv)
            if not last and draw(st.booleans()):
                data += encode_client_frame(OP_PING, b"p", draw(masks))
                expected.append(("ping", b"p"))
        expected.append(("message", is_text, payload))
    return bytes(data), expected, bits, no_takeover


@given(compressed_streams(), st.lists(st.integers(min_value=0), max_size=8))
def test_client_compressed_messages_decode_however_they_are_read(
    stream: tuple[bytes, list[tuple[object, ...]], int, bool], cuts: list[int]
) -> None:
    data, expected, bits, no_takeover = stream
    decoder = FrameDecoder(deflate_window_bits=bits, deflate_no_context_takeover=no_takeover)
    assert as_tuples(feed_in_chunks(decoder, data, cuts)) == expected
    assert decoder.buffered_bytes == 0


@given(
    st.text(unicode, max_size=3000) | st.binary(max_size=3000),
    st.integers(9, 15),
    st.integers(0, 9),
)
def test_server_frames_inflate_with_zlib(payload: str | bytes, bits: int, level: int) -> None:
    if isinstance(payload, str):
        frame = encode_text_deflated(payload, window_bits=bits, level=level)
        raw, opcode = payload.encode(), OP_TEXT
    else:
        frame = encode_binary_deflated(payload, window_bits=bits, level=level)
        raw, opcode = payload, OP_BINARY
    [parsed] = parse_frames(frame)
    assert (parsed.fin, parsed.rsv, parsed.opcode, parsed.mask) == (True, RSV1, opcode, None)
    assert not parsed.payload.endswith(TAIL)
    # A client whose window is exactly ours reads it.
    assert server_inflate(parsed.payload, bits) == raw
    # No context is shared: the same message compresses the same every time,
    # and each inflates with a fresh inflater.
    assert (encode_text_deflated if isinstance(payload, str) else encode_binary_deflated)(
        payload, window_bits=bits, level=level
    ) == frame


def test_server_frames_decode_through_our_own_decoder() -> None:
    messages = [b"x" * n for n in (0, 1, 200, 70_000)] + [
        batch_message("s", 0, list(session_events(300, seed=1)))
    ]
    data = b"".join(encode_binary_deflated(m) for m in messages)
    decoder = FrameDecoder(
        require_mask=False, deflate_window_bits=15, deflate_no_context_takeover=True
    )
    assert [e.data for e in decoder.feed(data)] == messages  # type: ignore[union-attr]


def test_rrweb_batches_compress_well() -> None:
    batch = batch_message("s1", 0, list(session_events(200, seed=4)))
    frame = encode_text_deflated(batch)
    assert len(frame) * 4 < len(batch)
    assert server_inflate(parse_frames(frame)[0].payload) == batch
    # Large payloads are compressed with the GIL released; same bytes.
    big = batch * 20
    assert len(big) >= 64 * 1024
    assert server_inflate(parse_frames(encode_text_deflated(big))[0].payload) == big


# --- errors ------------------------------------------------------------------------


def close_code(data: bytes, **config: object) -> int:
    decoder = FrameDecoder(**config)  # type: ignore[arg-type]
    with pytest.raises(WebSocketError) as info:
        decoder.feed(data)
    return info.value.close_code


KEY = b"\x01\x02\x03\x04"


def test_rsv1_without_negotiation() -> None:
    packed = client_compress(zlib.compressobj(6, zlib.DEFLATED, -15), b"hello")
    assert close_code(encode_client_frame(OP_TEXT, packed, KEY, rsv=RSV1)) == 1002


def test_rsv1_where_it_is_not_allowed() -> None:
    deflate = {"deflate_window_bits": 15}
    data = encode_client_frame(OP_TEXT, b"ab", KEY, fin=False) + encode_client_frame(
        OP_CONTINUATION, b"cd", KEY, rsv=RSV1
    )
    assert close_code(data, **deflate) == 1002
    assert close_code(encode_client_frame(OP_PING, b"", KEY, rsv=RSV1), **deflate) == 1002
    assert close_code(encode_client_frame(OP_TEXT, b"", KEY, rsv=0b010), **deflate) == 1002


def test_bomb_is_refused_with_1009() -> None:
    packed = client_compress(zlib.compressobj(9, zlib.DEFLATED, -15), bytes(20 << 20))
    assert len(packed) < 30_000
    frame = encode_client_frame(OP_BINARY, packed, KEY, rsv=RSV1)
    assert close_code(frame, deflate_window_bits=15, max_message_bytes=1 << 20) == 1009


def test_invalid_deflate_data_is_1002_and_bad_text_1007() -> None:
    deflate = {"deflate_window_bits": 15}
    assert close_code(encode_client_frame(OP_BINARY, b"\x07\x00", KEY, rsv=RSV1), **deflate) == 1002
    packed = client_compress(zlib.compressobj(6, zlib.DEFLATED, -15), b"caf\xc3(")
    assert close_code(encode_client_frame(OP_TEXT, packed, KEY, rsv=RSV1), **deflate) == 1007


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: encode_text_deflated(b"x", window_bits=8), ValueError),
        (lambda: encode_text_deflated(b"x", window_bits=16), ValueError),
        (lambda: encode_text_deflated(b"x", window_bits=-1), ValueError),
        (lambda: encode_binary_deflated(b"x", level=10), ValueError),
        (lambda: encode_binary_deflated(b"x", level=-1), ValueError),
        (lambda: encode_text_deflated(b"\xff"), ValueError),
        (lambda: encode_text_deflated(3), TypeError),  # type: ignore[arg-type]
        (lambda: FrameDecoder(deflate_window_bits=7), ValueError),
        (lambda: FrameDecoder(deflate_window_bits=16), ValueError),
        (lambda: FrameDecoder(deflate_window_bits=-3), ValueError),
        (lambda: FrameDecoder(deflate_no_context_takeover=True), ValueError),
    ],
)
def test_bad_arguments(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


def test_decoder_reports_its_settings() -> None:
    plain = FrameDecoder()
    assert (plain.deflate_window_bits, plain.deflate_no_context_takeover) == (None, False)
    assert "deflate" not in repr(plain)
    decoder = FrameDecoder(deflate_window_bits=8, deflate_no_context_takeover=True)
    assert (decoder.deflate_window_bits, decoder.deflate_no_context_takeover) == (8, True)
    assert "deflate_window_bits=8, deflate_no_context_takeover=True" in repr(decoder)


# --- WebSocket.encode_message ---------------------------------------------------


def websocket(deflate: DeflateParams | None) -> WebSocket:
    stream, _ = trio.testing.memory_stream_pair()
    return WebSocket(stream, FrameDecoder(), deflate=deflate)


LONG = "x" * MIN_COMPRESS_BYTES


@pytest.mark.parametrize(
    ("deflate", "data", "compress", "rsv"),
    [
        (None, LONG, True, 0),
        (DeflateParams(), LONG, True, RSV1),
        (DeflateParams(), LONG, False, 0),
        (DeflateParams(), LONG[:-1], True, 0),
        (DeflateParams(server_max_window_bits=8), LONG, True, 0),
        (DeflateParams(server_max_window_bits=9), LONG, True, RSV1),
    ],
)
def test_encode_message_compresses_only_when_it_should(
    deflate: DeflateParams | None, data: str, compress: bool, rsv: int
) -> None:
    ws = websocket(deflate)
    for binary in (False, True):
        [frame] = parse_frames(ws.encode_message(data, binary=binary, compress=compress))
        assert (frame.rsv, frame.opcode) == (rsv, OP_BINARY if binary else OP_TEXT)
        if rsv:
            assert deflate is not None
            payload = server_inflate(frame.payload, deflate.server_max_window_bits)
        else:
            payload = frame.payload
        assert payload == data.encode()
