"""The WebSocket frame codec of ``replaywire._core``, from Python.

Round-trips with hypothesis: client frames built by ``encode_client_frame``
(random payloads, fragmentation, control frames between fragments, masks and
socket-read splits) decode to the messages put in; server frames from the
``encode_*`` functions parse back with the small reference parser below.
Then every framing violation with the close code it must carry.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replaywire import _core
from replaywire._core import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    CoreError,
    FrameDecoder,
    WebSocketError,
    WsClose,
    WsMessage,
    WsPing,
    WsPong,
    encode_binary,
    encode_client_frame,
    encode_close,
    encode_frame,
    encode_ping,
    encode_pong,
    encode_text,
)

KEY = b"\x37\xfa\x21\x3d"

# --- a reference parser, independent of the Rust one --------------------------


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    mask: bytes | None
    payload: bytes  # unmasked


def parse_frames(data: bytes) -> list[Frame]:
    """Parse a whole byte string of frames, RFC 6455 §5.2, no validation."""
    frames = []
    i = 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        i += 2
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack_from("!H", data, i)
            i += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, i)
            i += 8
        mask = None
        if b1 & 0x80:
            mask = data[i : i + 4]
            i += 4
        payload = data[i : i + length]
        assert len(payload) == length, "truncated frame"
        i += length
        if mask is not None:
            payload = bytes(b ^ mask[j % 4] for j, b in enumerate(payload))
        frames.append(Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, mask, payload))
    return frames


def minimal_header_len(n: int) -> int:
    return 2 if n <= 125 else 4 if n <= 0xFFFF else 10


def as_tuples(events: Sequence[object]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for e in events:
        if isinstance(e, WsMessage):
            out.append(("message", e.is_text, e.data))
        elif isinstance(e, WsPing):
            out.append(("ping", e.data))
        elif isinstance(e, WsPong):
            out.append(("pong", e.data))
        elif isinstance(e, WsClose):
            out.append(("close", e.code, e.reason))
        else:
            raise AssertionError(f"unexpected event {e!r}")
    return out


def feed_in_chunks(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[object]:
    events: list[object] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        events += decoder.feed(data[start:cut])
        start = max(start, cut)
    return events


def decode_error(data: bytes, **config: int | bool) -> WebSocketError:
    decoder = FrameDecoder(**config)  # type: ignore[arg-type]
    with pytest.raises(WebSocketError) as info:
        decoder.feed(data)
    return info.value


def client(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    return encode_client_frame(opcode, payload, KEY, fin=fin, rsv=rsv)


# --- hypothesis round trips ---------------------------------------------------

masks = st.binary(min_size=4, max_size=4)
control_payloads = st.binary(max_size=125)
# Encodable text: no lone surrogates.
unicode = st.characters(exclude_categories=["Cs"])


def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(unicode, max_size=max_size)


# Payloads around the 16/64-bit length boundary, cheap to generate: a short
# random pattern repeated.
long_binary = st.builds(
    lambda n, pattern: (pattern * (n // len(pattern) + 1))[:n],
    st.integers(65_530, 65_540),
    st.binary(min_size=1, max_size=8),
)


@st.composite
def client_streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[object, ...]]]:
    """Masked frames of several messages, each fragmented at random points
    (even inside a UTF-8 character), with pings and pongs between fragments;
    and the events they must decode to."""
    data = bytearray()
    expected: list[tuple[object, ...]] = []
    for _ in range(draw(st.integers(1, 4))):
        is_text = draw(st.booleans())
        if is_text:
            payload = draw(texts(max_size=300)).encode()
        else:
            payload = draw(st.binary(max_size=300) | long_binary)
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=4)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for i, piece in enumerate(pieces):
            opcode = (OP_TEXT if is_text else OP_BINARY) if i == 0 else OP_CONTINUATION
            last = i == len(pieces) - 1
            data += encode_client_frame(opcode, piece, draw(masks), fin=last)
            if not last and draw(st.booleans()):
                control = draw(st.sampled_from([OP_PING, OP_PONG]))
                body = draw(control_payloads)
                data += encode_client_frame(control, body, draw(masks))
                expected.append(("ping" if control == OP_PING else "pong", body))
        expected.append(("message", is_text, payload))
    if draw(st.booleans()):
        code = draw(st.sampled_from([1000, 1001, 1011, 3000, 4999]))
        reason = draw(texts(max_size=20))
        body = struct.pack("!H", code) + reason.encode()
        data += encode_client_frame(OP_CLOSE, body, draw(masks))
        expected.append(("close", code, reason))
    return bytes(data), expected


@given(client_streams(), st.lists(st.integers(min_value=0), max_size=8))
def test_client_streams_decode_to_their_messages_however_they_are_read(
    stream: tuple[bytes, list[tuple[object, ...]]], cuts: list[int]
) -> None:
    data, expected = stream
    decoder = FrameDecoder()
    assert as_tuples(feed_in_chunks(decoder, data, cuts)) == expected
    assert decoder.buffered_bytes == 0
    assert decoder.close_received == (bool(expected) and expected[-1][0] == "close")


@given(
    st.integers(0, 15),
    st.binary(max_size=300) | long_binary,
    masks,
    st.booleans(),
    st.integers(0, 7),
)
def test_encode_client_frame_matches_the_reference_parser(
    opcode: int, payload: bytes, mask: bytes, fin: bool, rsv: int
) -> None:
    data = encode_client_frame(opcode, payload, mask, fin=fin, rsv=rsv)
    assert parse_frames(data) == [Frame(fin, rsv, opcode, mask, payload)]
    assert len(data) == minimal_header_len(len(payload)) + 4 + len(payload)


@given(
    st.sampled_from([OP_CONTINUATION, OP_TEXT, OP_BINARY]),
    st.binary(max_size=300) | long_binary,
    st.booleans(),
)
def test_encode_frame_data_frames(opcode: int, payload: bytes, fin: bool) -> None:
    data = encode_frame(opcode, payload, fin=fin)
    assert parse_frames(data) == [Frame(fin, 0, opcode, None, payload)]
    assert len(data) == minimal_header_len(len(payload)) + len(payload)


@given(st.sampled_from([OP_CLOSE, OP_PING, OP_PONG]), control_payloads)
def test_encode_frame_control_frames(opcode: int, payload: bytes) -> None:
    assert parse_frames(encode_frame(opcode, payload)) == [Frame(True, 0, opcode, None, payload)]


@given(texts(max_size=500))
def test_encode_text_str_and_bytes(text: str) -> None:
    expected = [Frame(True, 0, OP_TEXT, None, text.encode())]
    assert parse_frames(encode_text(text)) == expected
    assert parse_frames(encode_text(text.encode())) == expected


@given(st.binary(max_size=300) | long_binary)
def test_encode_binary(payload: bytes) -> None:
    assert parse_frames(encode_binary(payload)) == [Frame(True, 0, OP_BINARY, None, payload)]


@given(control_payloads)
def test_encode_ping_and_pong(payload: bytes) -> None:
    assert parse_frames(encode_ping(payload)) == [Frame(True, 0, OP_PING, None, payload)]
    assert parse_frames(encode_pong(payload)) == [Frame(True, 0, OP_PONG, None, payload)]


@given(
    st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014, 3000, 4999]),
    texts(max_size=200),
)
def test_encode_close_cuts_reason_at_a_character_boundary(code: int, reason: str) -> None:
    [frame] = parse_frames(encode_close(code, reason))
    assert (frame.fin, frame.opcode, frame.mask) == (True, OP_CLOSE, None)
    assert struct.unpack("!H", frame.payload[:2]) == (code,)
    sent = frame.payload[2:].decode()  # a cut inside a character would fail here
    encoded = reason.encode()
    assert encoded.startswith(sent.encode())
    if len(encoded) <= 123:
        assert sent == reason
    else:
        assert 120 <= len(sent.encode()) <= 123  # at most 3 bytes of a character dropped


@given(
    st.lists(st.binary(max_size=200), max_size=20), st.lists(st.integers(min_value=0), max_size=8)
)
def test_server_frames_decode_when_masking_is_not_required(
    payloads: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(encode_binary(p) for p in payloads) + encode_close(1000, "done")
    events = feed_in_chunks(FrameDecoder(require_mask=False), data, cuts)
    assert as_tuples(events) == [("message", False, p) for p in payloads] + [
        ("close", 1000, "done")
    ]


# --- the decoder from Python ---------------------------------------------------


def test_feed_returns_every_complete_frame_of_one_read() -> None:
    data = b"".join(client(OP_TEXT, f"event {i}".encode()) for i in range(100))
    events = FrameDecoder().feed(data)
    assert isinstance(events, list)
    assert as_tuples(events) == [("message", True, f"event {i}".encode()) for i in range(100)]


def test_event_objects() -> None:
    data = (
        client(OP_TEXT, b"hi")
        + client(OP_BINARY, b"\x00\xff")
        + client(OP_PING, b"p")
        + client(OP_PONG, b"")
        + client(OP_CLOSE, b"\x03\xe9bye")
    )
    decoder = FrameDecoder()
    text, binary, ping, pong, close = decoder.feed(data)
    assert isinstance(text, WsMessage) and text.is_text is True and text.data == b"hi"
    assert type(text.data) is bytes
    assert text.data is text.data  # built once, when the event was made
    assert isinstance(binary, WsMessage) and binary.is_text is False
    assert isinstance(ping, WsPing) and ping.data == b"p"
    assert isinstance(pong, WsPong) and pong.data == b""
    assert isinstance(close, WsClose) and (close.code, close.reason) == (1001, "bye")
    assert decoder.close_received
    assert repr(text) == "WsMessage(is_text=True, data=b'hi')"
    assert repr(ping) == "WsPing(data=b'p')"
    assert repr(close) == "WsClose(code=1001, reason='bye')"
    assert repr(WsClose) == "<class 'replaywire._core.WsClose'>"
    with pytest.raises(AttributeError):
        text.data = b"x"  # type: ignore[misc]


def test_long_payload_repr_is_cut() -> None:
    [message] = FrameDecoder().feed(client(OP_BINARY, b"x" * 10_000))
    assert repr(message) == f"WsMessage(is_text=False, data={b'x' * 64!r}... (10000 bytes))"


def test_empty_close_has_no_code() -> None:
    [close] = FrameDecoder().feed(client(OP_CLOSE, b""))
    assert isinstance(close, WsClose)
    assert (close.code, close.reason) == (None, "")


def test_partial_frames_are_buffered() -> None:
    frame = client(OP_BINARY, b"z" * 1000)
    decoder = FrameDecoder()
    assert decoder.feed(frame[:3]) == []
    assert decoder.feed(frame[3:500]) == []
    assert decoder.buffered_bytes == 500 - 8
    assert as_tuples(decoder.feed(frame[500:])) == [("message", False, b"z" * 1000)]
    assert decoder.buffered_bytes == 0


def test_control_frames_between_fragments_come_out_at_once() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(client(OP_TEXT, b"ab", fin=False)) == []
    assert as_tuples(decoder.feed(client(OP_PING, b"now"))) == [("ping", b"now")]
    assert decoder.buffered_bytes == 2
    assert as_tuples(decoder.feed(client(OP_CONTINUATION, b"cd"))) == [("message", True, b"abcd")]


def test_events_before_an_error_come_first_then_the_decoder_is_spent() -> None:
    """What the same call completed before the violation is returned; the
    error comes with the next call, even an empty one, and every later one."""
    decoder = FrameDecoder()
    events = decoder.feed(client(OP_TEXT, b"fine") + client(OP_PING, b"p") + client(3, b""))
    assert as_tuples(events) == [("message", True, b"fine"), ("ping", b"p")]
    assert decoder.failed
    with pytest.raises(WebSocketError) as info:
        decoder.feed(b"")
    assert info.value.close_code == 1002
    with pytest.raises(WebSocketError) as again:
        decoder.feed(client(OP_TEXT, b"later"))
    assert again.value.close_code == 1002


def test_an_error_with_nothing_before_it_raises_at_once() -> None:
    decoder = FrameDecoder()
    assert not decoder.failed
    with pytest.raises(WebSocketError) as info:
        decoder.feed(client(3, b""))
    assert info.value.close_code == 1002
    assert decoder.failed


def test_websocket_error_attributes() -> None:
    err = decode_error(client(OP_TEXT, b"\xff"))
    assert isinstance(err, CoreError)
    assert err.close_code == 1007
    assert err.message == str(err)
    assert "UTF-8" in err.message


def test_data_after_close_is_discarded() -> None:
    """RFC 6455 section 5.5.1: nothing follows a close; what does is ignored,
    in the same call or a later one, frames or not."""
    decoder = FrameDecoder()
    events = decoder.feed(client(OP_CLOSE, b"") + client(OP_PING, b"") + b"\xff")
    assert as_tuples(events) == [("close", None, "")]
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\x81") == []
    assert decoder.feed(client(OP_TEXT, b"late")) == []
    assert not decoder.failed
    assert decoder.buffered_bytes == 0


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        FrameDecoder(1024)  # type: ignore[call-arg]
    decoder = FrameDecoder(max_frame_bytes=10, max_message_bytes=20, require_mask=False)
    assert decoder.buffered_bytes == 0
    assert not decoder.close_received


# --- violations and their close codes ----------------------------------------

_len64_msb = bytes([0x82, 0xFF]) + (1 << 63).to_bytes(8, "big") + KEY

PROTOCOL_ERRORS = {
    "unmasked client frame": encode_text("hello"),
    "rsv1 set": client(OP_TEXT, b"x", rsv=4),
    "rsv3 set": client(OP_TEXT, b"x", rsv=1),
    "reserved opcode 3": client(3, b""),
    "reserved opcode 7": client(7, b""),
    "reserved opcode 11": client(11, b""),
    "reserved opcode 15": client(15, b""),
    "fragmented ping": client(OP_PING, b"", fin=False),
    "fragmented close": client(OP_CLOSE, b"", fin=False),
    "ping over 125 bytes": client(OP_PING, b"p" * 126),
    "close over 125 bytes": client(OP_CLOSE, b"\x03\xe8" + b"r" * 124),
    "continuation without message": client(OP_CONTINUATION, b"x"),
    "text inside fragmented message": client(OP_TEXT, b"a", fin=False) + client(OP_TEXT, b"b"),
    "binary inside fragmented message": client(OP_BINARY, b"a", fin=False)
    + client(OP_BINARY, b"b"),
    "64-bit length with msb set": _len64_msb,
    "close body of 1 byte": client(OP_CLOSE, b"\x03"),
    "close code 999": client(OP_CLOSE, struct.pack("!H", 999)),
    "close code 1004": client(OP_CLOSE, struct.pack("!H", 1004)),
    "close code 1005": client(OP_CLOSE, struct.pack("!H", 1005)),
    "close code 1006": client(OP_CLOSE, struct.pack("!H", 1006)),
    "close code 1015": client(OP_CLOSE, struct.pack("!H", 1015)),
    "close code 2000": client(OP_CLOSE, struct.pack("!H", 2000)),
    "close code 0": client(OP_CLOSE, struct.pack("!H", 0)),
}


@pytest.mark.parametrize("data", PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS.keys())
def test_protocol_errors_close_with_1002(data: bytes) -> None:
    assert decode_error(data).close_code == 1002


INVALID_PAYLOADS = {
    "invalid text": client(OP_TEXT, b"abc\xc0\xaf"),
    "surrogate": client(OP_TEXT, b"\xed\xa0\x80"),
    "truncated at end": client(OP_TEXT, b"\xe2\x82"),
    "invalid in second fragment": client(OP_TEXT, "κόσμε".encode(), fin=False)
    + client(OP_CONTINUATION, b"\xf4\x90\x80\x80", fin=False),
    "truncated across fragments": client(OP_TEXT, b"\xe2", fin=False)
    + client(OP_CONTINUATION, b"\x82"),
    "close reason": client(OP_CLOSE, b"\x03\xe8\xff"),
}


@pytest.mark.parametrize("data", INVALID_PAYLOADS.values(), ids=INVALID_PAYLOADS.keys())
def test_invalid_utf8_closes_with_1007(data: bytes) -> None:
    assert decode_error(data).close_code == 1007


def test_invalid_utf8_fails_before_the_message_ends() -> None:
    decoder = FrameDecoder()
    decoder.feed(client(OP_TEXT, b"ok", fin=False))
    with pytest.raises(WebSocketError) as info:
        decoder.feed(client(OP_CONTINUATION, b"\xf4\x90", fin=False))  # not final
    assert info.value.close_code == 1007
    # ...and inside one frame still arriving.
    frame = client(OP_TEXT, b"abc\xc3\x28" + b"x" * 5000)
    decoder = FrameDecoder()
    with pytest.raises(WebSocketError):
        decoder.feed(frame[:20])


def test_oversized_frame_closes_with_1009_from_its_header() -> None:
    header = client(OP_BINARY, b"\x00" * 2000)[:8]  # 16-bit length form + mask
    assert decode_error(header, max_frame_bytes=1000).close_code == 1009


def test_oversized_message_closes_with_1009_at_the_fragment_header() -> None:
    decoder = FrameDecoder(max_message_bytes=100)
    decoder.feed(client(OP_BINARY, b"a" * 60, fin=False))
    with pytest.raises(WebSocketError) as info:
        decoder.feed(client(OP_CONTINUATION, b"b" * 60)[:6])
    assert info.value.close_code == 1009


def test_unmasked_frames_accepted_when_mask_not_required() -> None:
    events = FrameDecoder(require_mask=False).feed(encode_text("srv"))
    assert as_tuples(events) == [("message", True, b"srv")]


# --- encoder arguments ---------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda: encode_frame(3, b""), ValueError),
        (lambda: encode_frame(16, b""), ValueError),
        (lambda: encode_frame(-1, b""), ValueError),
        (lambda: encode_frame(OP_PING, b"x" * 126), ValueError),
        (lambda: encode_frame(OP_CLOSE, b"", fin=False), ValueError),
        (lambda: encode_ping(b"x" * 126), ValueError),
        (lambda: encode_pong(b"x" * 126), ValueError),
        (lambda: encode_text(b"\xff"), ValueError),
        (lambda: encode_text(123), TypeError),  # type: ignore[arg-type]
        (lambda: encode_close(1005), ValueError),
        (lambda: encode_close(999), ValueError),
        (lambda: encode_close(70000), ValueError),
        (lambda: encode_close(None, "reason without code"), ValueError),
        (lambda: encode_client_frame(16, b"", KEY), ValueError),
        (lambda: encode_client_frame(1, b"", b"abc"), ValueError),
        (lambda: encode_client_frame(1, b"", KEY, rsv=8), ValueError),
        (lambda: encode_frame(OP_TEXT, b"", True), TypeError),  # type: ignore[call-arg]
        (lambda: encode_client_frame(1, b"", KEY, True), TypeError),  # type: ignore[call-arg]
    ],
)
def test_bad_encoder_arguments(call: Callable[[], Any], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        call()


def test_encoder_defaults() -> None:
    assert encode_ping() == b"\x89\x00"
    assert encode_pong() == b"\x8a\x00"
    assert encode_close() == b"\x88\x02\x03\xe8"
    assert encode_close(None) == b"\x88\x00"
    assert encode_frame(OP_TEXT, b"a") == b"\x81\x01a"
    assert encode_frame(OP_TEXT, b"a", fin=False) == b"\x01\x01a"


def test_opcode_constants() -> None:
    assert (OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG) == (0, 1, 2, 8, 9, 10)


def test_ws_event_alias_exists_at_runtime() -> None:
    events = FrameDecoder().feed(
        client(OP_TEXT, b"a") + client(OP_PING, b"") + client(OP_CLOSE, b"")
    )
    assert all(isinstance(e, _core.WsEvent) for e in events)
