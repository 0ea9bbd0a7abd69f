"""The messages instances exchange over Redis for live fan-out: every
message round-trips, deltas come out as the broadcaster built them (raw
when small, one zstd frame readable by any decoder when not), and bytes
that are not such a message are refused with WireError, never misread."""

from __future__ import annotations

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from replaywire import _core
from replaywire.redis import wire

indices = st.integers(0, 2**63 - 1)
counts = st.integers(0, 2**32 - 1)
keyframes = st.none() | st.integers(0, 2**63 - 1)


@given(st.sampled_from([wire.HEAD, wire.END]), indices, counts, keyframes)
def test_head_and_end_round_trip(kind: int, first: int, count: int, keyframe: int | None) -> None:
    got = wire.decode(wire.message(kind, first, count, keyframe))
    assert (got.kind, got.first, got.count, got.keyframe) == (kind, first, count, keyframe)
    assert got.data == b"" and got.next_index == first + count


@given(st.binary(max_size=4000), indices, counts, keyframes)
def test_deltas_round_trip_raw_or_as_one_zstd_frame(
    events: bytes, first: int, count: int, keyframe: int | None
) -> None:
    payload = wire.delta_payload(lambda data: _core.compress("zstd", data, 3), events)
    got = wire.decode(wire.message(wire.DELTA, first, count, keyframe, payload))
    assert (got.kind, got.first, got.count, got.keyframe) == (wire.DELTA, first, count, keyframe)
    assert got.raw_length == len(events)
    if len(events) < wire.COMPRESS_MIN:
        assert (got.codec, got.data) == (wire.CODEC_NONE, events)
    else:
        assert got.codec == wire.CODEC_ZSTD
        assert zstandard.ZstdDecompressor().decompress(got.data) == events


@given(st.binary(max_size=wire.HEADER.size * 2))
def test_other_bytes_are_refused_or_read_as_a_valid_message(data: bytes) -> None:
    try:
        got = wire.decode(data)
    except wire.WireError:
        return
    assert data[0] == wire.VERSION and got.kind in (wire.DELTA, wire.HEAD, wire.END)
    assert got.codec in (wire.CODEC_NONE, wire.CODEC_ZSTD)


@given(st.text(min_size=1, max_size=300), st.none() | indices)
def test_wants_round_trip_whatever_the_session_key(session_id: str, from_index: int | None) -> None:
    # Keys are tenant-scoped client ids: spaces, digits and any text.
    assert wire.decode_want(wire.want(session_id, from_index)) == (session_id, from_index)


def test_a_want_without_an_index_is_refused() -> None:
    with pytest.raises(wire.WireError):
        wire.decode_want(b"session-without-index")
