"""Viewer event frames, as the fan-out's encoder builds them, read back by the
reference decoder (``replaywire.client``, on ``zlib`` and ``zstandard``) for
every codec, ``zstd-dict`` with the dictionary its frames name: the same
events, indices, kind, codec and resync flag (hypothesis)."""

from __future__ import annotations

import json
import random
import struct
import sys
from pathlib import Path

import pytest
import trio
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_config
from replaywire.client import decode_message
from replaywire.protocol import dictionary
from replaywire.protocol.broadcast import RELAY, Encoder
from replaywire.redis import wire

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_corpus

EVENTS = make_corpus.incremental_events([5], 400)
TRAINED = dictionary.train(
    list(dictionary.deltas(make_corpus.incremental_events(range(40, 46), 800), random.Random(2))),
    8 * 1024,
)


def unwrap(frame: bytes) -> bytes | str:
    """The payload of one unmasked server frame (RFC 6455 section 5.2)."""
    opcode, length, offset = frame[0] & 0x0F, frame[1] & 0x7F, 2
    if length == 126:
        (length,), offset = struct.unpack_from(">H", frame, 2), 4
    elif length == 127:
        (length,), offset = struct.unpack_from(">Q", frame, 2), 10
    payload = frame[offset : offset + length]
    assert offset + length == len(frame)
    return payload.decode() if opcode == 1 else payload


@pytest.fixture(scope="module")
def dictionary_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("frames") / "trained.zdict"
    path.write_bytes(TRAINED.data)
    return path


@settings(max_examples=60, deadline=None)
@given(
    codec=st.sampled_from(["none", "deflate", "zstd", "zstd-dict"]),
    start=st.integers(0, len(EVENTS) - 1),
    count=st.integers(1, 40),
    first_index=st.integers(0, 2**40),
    kind=st.sampled_from([b"snapshot", b"delta", b"session_events"]),
    resync=st.booleans(),
)
def test_every_codec_reads_back_through_the_reference_decoder(
    dictionary_path: Path,
    codec: str,
    start: int,
    count: int,
    first_index: int,
    kind: bytes,
    resync: bool,
) -> None:
    config = make_config(dictionary_path.parent, viewer_dictionary=str(dictionary_path))
    events = EVENTS[start : start + count]
    events_json = make_corpus.join(events)
    encoder = Encoder(config, clock=lambda: 1_700_000_000.5)
    frame = trio.run(
        lambda: encoder.frame(
            codec, kind, b'"s\\u00e9ance"', first_index, len(events), events_json, resync=resync
        )
    )
    message = decode_message(unwrap(frame), dictionary=TRAINED.data)
    assert message.type == kind.decode()
    assert (message.session_id, message.first_index, message.count) == (
        "s\u00e9ance",
        first_index,
        len(events),
    )
    assert message.codec == codec and message.server_time == 1_700_000_000_500
    assert json.loads(message.events_json) == [json.loads(e) for e in events]
    if codec != "none":  # text frames carry resync only in snapshots' JSON
        assert message.resync == resync
    if codec == "zstd-dict":
        payload = unwrap(frame)[30 + len("s\u00e9ance".encode()) :]
        assert isinstance(payload, bytes)
        assert zstandard.get_frame_parameters(payload).dict_id == TRAINED.id


def test_a_zstd_dict_frame_without_the_dictionary_is_a_clear_error(
    dictionary_path: Path,
) -> None:
    config = make_config(dictionary_path.parent, viewer_dictionary=str(dictionary_path))
    events_json = make_corpus.join(EVENTS[:5])
    frame = trio.run(
        lambda: Encoder(config).frame("zstd-dict", b"delta", b'"s"', 0, 5, events_json)
    )
    with pytest.raises(ValueError, match="needs the dictionary"):
        decode_message(unwrap(frame))


def test_a_tick_for_zstd_viewers_and_the_relay_is_compressed_once(tmp_path: Path) -> None:
    """An instance with local ``codec=zstd`` viewers and subscribers on other
    instances compresses a tick once: the relay carries the very bytes its
    zstd viewers get. Outside a tick's build nothing is kept."""
    encoder = Encoder(make_config(tmp_path))
    real = encoder._compressor("zstd")
    calls: list[int] = []

    class Counting:
        def compress(self, data: bytes) -> bytes:
            calls.append(len(data))
            return real.compress(data)

    encoder._compressors["zstd"] = Counting()  # type: ignore[assignment]
    events_json = make_corpus.join(EVENTS[:50])  # above the relay's COMPRESS_MIN

    async def tick() -> tuple[bytes, bytes]:
        with encoder.sharing_zstd():
            zstd = await encoder.frame("zstd", b"delta", b'"s"', 0, 50, events_json)
            relay = await encoder.frame(RELAY, b"delta", b'"s"', 0, 50, events_json)
        return zstd, relay

    zstd, relay = trio.run(tick)
    assert len(calls) == 1
    relayed = wire.decode(wire.message(wire.DELTA, 0, 50, None, relay))
    assert relayed.codec == wire.CODEC_ZSTD
    assert unwrap(zstd).endswith(relayed.data)  # type: ignore[arg-type]
    trio.run(lambda: encoder.frame("zstd", b"delta", b'"s"', 0, 50, events_json))
    assert len(calls) == 2
