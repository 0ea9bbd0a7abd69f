"""ProtocolDecoder, the message classes, split_events and join_events.

Round trips with hypothesis: rrweb-like events spliced raw into a batch
message come back byte-for-byte from ``payload()`` and ``split_events``, and
joined chunks equal one chunk of all their events.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from replaywire import _core
from rrweb import batch_message, session_events, start_message

decoder = _core.ProtocolDecoder()


def error_of(data: bytes, dec: _core.ProtocolDecoder = decoder) -> _core.MessageError:
    """The error a bad message gets: the same on a tracker and a viewer connection."""
    with pytest.raises(_core.MessageError) as info:
        dec.decode_tracker(data)
    with pytest.raises(_core.MessageError) as viewer:
        dec.decode_viewer(data)
    error = info.value
    assert (error.code, error.message, error.seq) == (
        viewer.value.code,
        viewer.value.message,
        viewer.value.seq,
    )
    return error


def msg(type_: str, data: Any = None) -> bytes:
    body: dict[str, Any] = {"type": type_}
    if data is not None:
        body["data"] = data
    return json.dumps(body).encode()


# --- messages -------------------------------------------------------------------


def test_session_start_exposes_every_field() -> None:
    m = decoder.decode_tracker(start_message("s-1").encode())
    assert isinstance(m, _core.SessionStart)
    assert isinstance(m, _core.TrackerMessage)
    assert (m.session_id, m.user_id, m.url) == ("s-1", "user-42", "https://shop.example/checkout")
    assert m.user_agent == "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"
    assert m.start_time == 1_700_000_000_000.0
    assert (m.referrer, m.time_zone) == ("https://search.example/", "Europe/Berlin")
    vp = m.viewport
    assert isinstance(vp, _core.Viewport)
    assert (vp.width, vp.height, vp.device_pixel_ratio) == (1440, 900, 2.0)


def test_session_start_optional_fields_may_be_null_absent_or_unknown() -> None:
    m = decoder.decode_tracker(
        msg("session_start", {"sessionId": "s", "userId": None, "future": [1]})
    )
    assert isinstance(m, _core.SessionStart)
    assert (m.user_id, m.url, m.user_agent, m.viewport, m.start_time) == (None,) * 5
    assert (m.referrer, m.time_zone) == (None, None)
    m = decoder.decode_tracker(msg("session_start", {"sessionId": "s", "viewport": {"height": 5}}))
    assert isinstance(m, _core.SessionStart) and m.viewport is not None
    assert (m.viewport.width, m.viewport.height, m.viewport.device_pixel_ratio) == (None, 5, None)


def test_control_messages() -> None:
    m = decoder.decode_tracker(msg("session_end"))
    assert isinstance(m, _core.SessionEnd) and m.session_id is None
    m = decoder.decode_tracker(msg("session_end", {"sessionId": "a"}))
    assert isinstance(m, _core.SessionEnd) and m.session_id == "a"
    m = decoder.decode_viewer(msg("viewer_join_session", {"sessionId": "a", "fromIndex": 3}))
    assert isinstance(m, _core.ViewerJoin) and (m.session_id, m.from_index) == ("a", 3)
    assert isinstance(m, _core.ViewerMessage)
    m = decoder.decode_viewer(msg("viewer_join_session", {"sessionId": "a"}))
    assert isinstance(m, _core.ViewerJoin) and m.from_index is None
    m = decoder.decode_viewer(msg("viewer_leave_session", {"sessionId": "a"}))
    assert isinstance(m, _core.ViewerLeave) and m.session_id == "a"
    m = decoder.decode_viewer(msg("get_session_events", {"sessionId": "a"}))
    assert isinstance(m, _core.GetSessionEvents) and (m.from_index, m.limit) == (0, None)
    m = decoder.decode_viewer(
        msg("get_session_events", {"sessionId": "a", "fromIndex": 9, "limit": 2})
    )
    assert isinstance(m, _core.GetSessionEvents) and (m.from_index, m.limit) == (9, 2)


@pytest.mark.parametrize(
    ("data", "side", "refused"),
    [
        (msg("viewer_join_session", {"sessionId": "a"}), "tracker", "viewer"),
        (msg("get_session_events", {"sessionId": "a"}), "tracker", "viewer"),
        (msg("session_start", {"sessionId": "a"}), "viewer", "tracker"),
        (batch_message("a", 3, []), "viewer", "tracker"),
    ],
)
def test_each_side_refuses_the_other_sides_messages(data: bytes, side: str, refused: str) -> None:
    decode = decoder.decode_tracker if side == "tracker" else decoder.decode_viewer
    with pytest.raises(_core.MessageError) as info:
        decode(data)
    assert (info.value.code, info.value.seq) == ("not_allowed", None)
    assert info.value.message == f"{refused} messages are not accepted on a {side} connection"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b'["session_end"]',
        b'["events_batch", {"events": []}]',
        b'"session_end"',
        b'{"data":{}}',
        b'{"type":1}',
        b"\xff",
        msg("session_start", {}),
        msg("session_start", {"sessionId": ""}),
        msg("session_start", {"sessionId": "x" * 129}),
        msg("session_start", {"sessionId": 5}),
        msg("session_start", ["s"]),
        msg("session_start", {"sessionId": "s", "viewport": {"width": "wide"}}),
        msg("session_start", {"sessionId": "s", "viewport": [1440, 900]}),
        msg("viewer_join_session", {"sessionId": "a", "fromIndex": -1}),
        msg("get_session_events", {"sessionId": "a", "limit": 0}),
        msg("viewer_leave_session"),
    ],
)
def test_bad_messages_are_invalid_message(data: bytes) -> None:
    err = error_of(data)
    assert err.code == "invalid_message"
    assert err.seq is None
    assert err.message and str(err) == err.message
    assert isinstance(err, _core.CoreError)


def test_unknown_type_is_named() -> None:
    err = error_of(msg("session_pause", {"sessionId": "a"}))
    assert err.code == "unknown_message_type"
    assert "session_pause" in err.message


# --- batches --------------------------------------------------------------------


def test_batch_of_a_recorded_session_keeps_events_verbatim() -> None:
    events = list(session_events(50, seed=3))
    m = decoder.decode_tracker(batch_message("s-1", 4, events))
    assert isinstance(m, _core.EventsBatch)
    assert (m.session_id, m.seq, m.count) == ("s-1", 4, 50)
    assert m.nbytes == sum(map(len, events))
    assert m.payload() == b"[" + b",".join(events) + b"]"
    stamps = [json.loads(e)["timestamp"] for e in events]
    assert (m.min_timestamp, m.max_timestamp) == (min(stamps), max(stamps))
    assert m.has_full_snapshot and m.has_meta
    assert _core.split_events(m.payload()) == events


def test_batch_flags_and_empty_batch() -> None:
    m = decoder.decode_tracker(batch_message("s", None, [b'{"type":3,"timestamp":5}']))
    assert isinstance(m, _core.EventsBatch)
    assert (m.seq, m.has_full_snapshot, m.has_meta) == (None, False, False)
    m = decoder.decode_tracker(b'{"type":"events_batch","data":{"events":[]}}')
    assert isinstance(m, _core.EventsBatch)
    assert (m.session_id, m.count, m.nbytes) == (None, 0, 0)
    assert (m.min_timestamp, m.max_timestamp) == (None, None)
    assert m.payload() == b"[]"


@pytest.mark.parametrize(
    "bad",
    [
        b"[3, 1]",
        b"3",
        b"null",
        b'{"timestamp":1}',
        b'{"type":3}',
        b'{"type":"3","timestamp":1}',
        b'{"type":3.5,"timestamp":1}',
        b'{"type":3,"timestamp":"now"}',
    ],
)
def test_invalid_events_name_their_position_and_carry_seq(bad: bytes) -> None:
    good = b'{"type":3,"timestamp":1}'
    err = error_of(batch_message("s", 17, [good, good, bad]))
    assert err.code == "invalid_event"
    assert err.seq == 17
    assert "event 2" in err.message


def test_limits_give_payload_too_large_with_the_limit_in_the_message() -> None:
    tight = _core.ProtocolDecoder(max_events_per_batch=3, max_event_bytes=100)
    event = b'{"type":3,"timestamp":1}'
    assert isinstance(tight.decode_tracker(batch_message("s", 1, [event] * 3)), _core.EventsBatch)
    err = error_of(batch_message("s", 2, [event] * 4), tight)
    assert (err.code, err.seq) == ("payload_too_large", 2)
    assert "3" in err.message
    big = b'{"type":3,"timestamp":1,"p":"' + b"x" * 100 + b'"}'
    err = error_of(batch_message("s", 3, [event, big]), tight)
    assert (err.code, err.seq) == ("payload_too_large", 3)
    assert "100" in err.message and "event 1" in err.message


@pytest.mark.parametrize(
    ("data", "seq"),
    [
        (b'{"type":"events_batch","data":{"seq":8}}', 8),
        (b'{"type":"events_batch","data":{"events":5,"seq":9}}', 9),
        (b'{"type":"events_batch","data":{"events":[],"seq":"1"}}', None),
        (b'{"type":"events_batch","data":{"events":[],"seq":-2}}', -2),
        (b'{"type":"events_batch"}', None),
    ],
)
def test_bad_batch_fields_carry_seq_when_readable(data: bytes, seq: int | None) -> None:
    err = error_of(data)
    assert (err.code, err.seq) == ("invalid_message", seq)


def test_decoder_limits_are_keyword_only_and_positive() -> None:
    with pytest.raises(TypeError):
        _core.ProtocolDecoder(10)  # type: ignore[misc]
    for bad in ({"max_events_per_batch": 0}, {"max_event_bytes": -1}):
        with pytest.raises(ValueError):
            _core.ProtocolDecoder(**bad)


# --- chunks ---------------------------------------------------------------------


def test_split_events_rejects_non_arrays() -> None:
    for bad in (b"", b"{}", b'{"type":3}', b"[1,", b"[1] x"):
        with pytest.raises(ValueError):
            _core.split_events(bad)
    assert _core.split_events(b" [ ] ") == []
    assert _core.split_events(b'[ {"a": 1} , 2 ]') == [b'{"a": 1}', b"2"]


def test_join_events() -> None:
    assert _core.join_events([]) == b"[]"
    assert _core.join_events([b"[]", b" [ ] "]) == b"[]"
    assert _core.join_events([b"[1]", b"[]", b" [2, 3] "]) == b"[1,2, 3]"
    with pytest.raises(ValueError, match="part 1"):
        _core.join_events([b"[1]", b"{}"])


# --- round trips ----------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
timestamps = st.integers(0, 2**53) | st.floats(-1e300, 1e300, allow_nan=False)
separators = st.sampled_from([(",", ":"), (", ", ": "), (" , ", " :\n ")])


@st.composite
def rrweb_events(draw: st.DrawFn) -> tuple[bytes, int, float]:
    """One event's raw bytes, as some tracker might have formatted it."""
    kind = draw(st.integers(0, 6) | st.integers(-(2**63), 2**63 - 1))
    ts = draw(timestamps)
    fields: dict[str, Any] = {"type": kind, "timestamp": ts}
    extra = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3))
    for key, value in extra.items():
        fields.setdefault(key, value)
    order = draw(st.permutations(list(fields)))
    raw = json.dumps(
        {k: fields[k] for k in order},
        separators=draw(separators),
        ensure_ascii=draw(st.booleans()),
    ).encode()
    return raw, kind, float(ts)


@st.composite
def batches(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, int, float]]]:
    events = draw(st.lists(rrweb_events(), max_size=12))
    gaps = [draw(st.sampled_from(["", " ", "\n\t"])) for _ in range(len(events) + 1)]
    inner = b"".join(
        gaps[i].encode() + (b"," if i else b"") + raw for i, (raw, _, _) in enumerate(events)
    )
    seq = draw(st.none() | st.integers(0, 2**63 - 1))
    head = b'{"type":"events_batch","data":{"sessionId":"s",'
    if seq is not None:
        head += b'"seq":%d,' % seq
    return head + b'"events":[' + inner + gaps[-1].encode() + b"]}}", events


@given(batches())
def test_batch_round_trips_each_event_byte_for_byte(case: tuple[bytes, list[Any]]) -> None:
    message, events = case
    m = decoder.decode_tracker(message)
    assert isinstance(m, _core.EventsBatch)
    raws = [raw for raw, _, _ in events]
    assert m.count == len(raws)
    assert m.nbytes == sum(map(len, raws))
    assert m.payload() == b"[" + b",".join(raws) + b"]"
    assert _core.split_events(m.payload()) == raws
    kinds = [kind for _, kind, _ in events]
    assert m.has_full_snapshot == (2 in kinds)
    assert m.has_meta == (4 in kinds)
    stamps = [ts for _, _, ts in events]
    assert m.min_timestamp == (min(stamps) if stamps else None)
    assert m.max_timestamp == (max(stamps) if stamps else None)


@given(st.lists(st.lists(rrweb_events(), max_size=5), max_size=5))
def test_joined_chunks_are_one_chunk_of_all_events(chunks: list[list[Any]]) -> None:
    payloads = []
    for chunk in chunks:
        m = decoder.decode_tracker(batch_message("s", None, [raw for raw, _, _ in chunk]))
        assert isinstance(m, _core.EventsBatch)
        payloads.append(m.payload())
    everything = [raw for chunk in chunks for raw, _, _ in chunk]
    joined = _core.join_events(payloads)
    assert joined == b"[" + b",".join(everything) + b"]"
    assert _core.split_events(joined) == everything
    assert _core.join_events([_core.join_events(payloads[:2]), *payloads[2:]]) == joined


@example("0", None, None, 6.7297805363413515e-214)  # needs serde_json's float_roundtrip
@given(
    st.text(min_size=1, max_size=128),
    st.none() | st.text(max_size=30),
    st.none() | st.integers(0, 10_000),
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
)
def test_session_start_round_trips(
    session_id: str, user_id: str | None, width: int | None, ratio: float | None
) -> None:
    data = {
        "sessionId": session_id,
        "userId": user_id,
        "viewport": {"width": width, "devicePixelRatio": ratio},
    }
    m = decoder.decode_tracker(json.dumps({"type": "session_start", "data": data}).encode())
    assert isinstance(m, _core.SessionStart)
    assert (m.session_id, m.user_id) == (session_id, user_id)
    assert m.viewport is not None
    assert (m.viewport.width, m.viewport.device_pixel_ratio) == (width, ratio)
