"""The event compression codecs: ``Compressor``, ``compress``, ``decompress``,
``train_dictionary``.

Everything we encode is decoded by the reference decoders (the ``zstandard``
package, and ``zlib`` with ``wbits=-15`` for raw deflate), and everything
they encode is decoded by ours, with hypothesis over codecs, levels and
inputs (random bytes and rrweb events). Then the limits: a 100 MB bomb is
refused after at most ``max_size`` bytes of output, measured in a fresh
process; garbage and truncations are ``invalid_compression``; bad names,
levels and dictionaries are ``ValueError``. A kept context compresses as a
fresh one does, and refuses a second thread instead of sharing itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from replaywire import _core
from replaywire._core import CODECS, CodecError, Compressor, compress, decompress

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_corpus

EVENTS = make_corpus.incremental_events([1], 300)
CHUNKS = make_corpus.chunks(EVENTS)
DELTAS = make_corpus.deltas(EVENTS)

payloads = st.one_of(
    st.binary(max_size=2048),
    st.lists(st.sampled_from(EVENTS), max_size=60).map(make_corpus.join),
)
codecs_and_levels = st.one_of(
    st.tuples(st.just("none"), st.sampled_from([None, 0])),
    st.tuples(st.just("deflate"), st.one_of(st.none(), st.integers(0, 9))),
    st.tuples(
        st.just("zstd"),
        st.one_of(st.none(), st.integers(-7, 19), st.just(-131_072)),
    ),
)


def reference_decode(codec: str, data: bytes) -> bytes:
    if codec == "zstd":
        params = zstandard.get_frame_parameters(data)
        assert params.has_checksum
        # Without max_output_size, this decoder requires the content size.
        return zstandard.ZstdDecompressor().decompress(data)
    if codec == "deflate":
        return zlib.decompress(data, wbits=-15)
    return data


def reference_encode(codec: str, data: bytes, level: int, *, sized: bool) -> bytes:
    if codec == "zstd":
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=sized)
        if sized:
            return cctx.compress(data)
        # A streaming encoder: the frame records no content size.
        cobj = cctx.compressobj()
        return cobj.compress(data) + cobj.flush()
    if codec == "deflate":
        dobj = zlib.compressobj(level, zlib.DEFLATED, -15)
        return dobj.compress(data) + dobj.flush()
    return data


def codec_error(fn: object, *args: object) -> CodecError:
    with pytest.raises(CodecError) as info:
        fn(*args)  # type: ignore[operator]
    assert isinstance(info.value, _core.CoreError)
    assert info.value.message == str(info.value)
    return info.value


def test_codec_names() -> None:
    assert CODECS == ("none", "deflate", "zstd")
    for name, level in [("none", 0), ("deflate", 6), ("zstd", 3)]:
        compressor = Compressor(name)
        assert (compressor.codec, compressor.level) == (name, level)
        assert compressor.dictionary_id is None
    assert repr(Compressor("zstd", 9)) == "Compressor(codec='zstd', level=9)"
    assert Compressor("zstd", 0).level == 3


# --- round trips through the reference codecs ----------------------------------


@given(codecs_and_levels, payloads)
def test_reference_decoders_read_what_we_write(
    codec_level: tuple[str, int | None], data: bytes
) -> None:
    codec, level = codec_level
    once = compress(codec, data, level)
    assert reference_decode(codec, once) == data
    assert decompress(codec, once, len(data)) == data
    kept = Compressor(codec, level)
    assert kept.compress(data) == once
    if codec == "zstd":
        assert zstandard.get_frame_parameters(once).content_size == len(data)


@given(st.sampled_from(["deflate", "zstd"]), st.integers(1, 9), st.booleans(), payloads)
def test_we_read_what_reference_encoders_write(
    codec: str, level: int, sized: bool, data: bytes
) -> None:
    packed = reference_encode(codec, data, level, sized=sized)
    assert decompress(codec, packed, len(data)) == data
    if data:
        e = codec_error(decompress, codec, packed, len(data) - 1)
        assert e.code == "payload_too_large"


@pytest.mark.parametrize("codec", CODECS)
def test_empty_input_round_trips(codec: str) -> None:
    packed = compress(codec, b"")
    assert reference_decode(codec, packed) == b""
    assert decompress(codec, packed, 0) == b""


@pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd CLI is not installed")
def test_the_zstd_cli_reads_our_frames_and_we_read_its() -> None:
    data = CHUNKS[0]
    ours = compress("zstd", data)
    cli = subprocess.run(["zstd", "-d", "-c"], input=ours, capture_output=True, check=True)
    assert cli.stdout == data
    # From a pipe the CLI does not know the size: a frame without one.
    theirs = subprocess.run(["zstd", "-19", "-c"], input=data, capture_output=True, check=True)
    assert (
        zstandard.get_frame_parameters(theirs.stdout).content_size == zstandard.CONTENTSIZE_UNKNOWN
    )
    assert decompress("zstd", theirs.stdout, len(data)) == data


def test_concatenated_zstd_frames_decode_as_one() -> None:
    parts = [compress("zstd", chunk) for chunk in CHUNKS[:3]]
    assert decompress("zstd", b"".join(parts), 1 << 20) == b"".join(CHUNKS[:3])


# --- kept contexts ---------------------------------------------------------------


@given(codecs_and_levels, st.lists(payloads, max_size=8))
def test_a_kept_compressor_gives_what_fresh_compression_gives(
    codec_level: tuple[str, int | None], items: list[bytes]
) -> None:
    codec, level = codec_level
    fresh = [compress(codec, item, level) for item in items]
    kept = Compressor(codec, level)
    assert [kept.compress(item) for item in items] == fresh
    assert kept.compress_many(items) == fresh
    assert kept.compress_many(tuple(items)) == fresh


def test_compress_many_of_a_whole_flush() -> None:
    # Over 64 KiB in all, so the loop runs with the GIL released.
    compressor = Compressor("zstd")
    packed = compressor.compress_many(CHUNKS)
    assert sum(map(len, CHUNKS)) > 64 * 1024
    assert [reference_decode("zstd", p) for p in packed] == CHUNKS
    assert compressor.compress_many([]) == []


def test_a_compressor_refuses_a_second_thread() -> None:
    # Level 12 on a 3 MB snapshot: ~100 ms with the GIL released, during
    # which this thread tries the same compressor over and over.
    snapshot = make_corpus.full_snapshot(7, cards=500)
    compressor = Compressor("zstd", 12)
    result: list[bytes] = []
    worker = threading.Thread(target=lambda: result.append(compressor.compress(snapshot)))
    refused = 0
    worker.start()
    while worker.is_alive():
        try:
            compressor.compress(b"x")
        except RuntimeError as e:
            assert "borrow" in str(e)
            refused += 1
    worker.join()
    assert refused > 0
    assert reference_decode("zstd", result[0]) == snapshot
    assert reference_decode("zstd", compressor.compress(b"after")) == b"after"


def test_realistic_events_compress_well() -> None:
    raw = sum(map(len, CHUNKS))
    packed = sum(map(len, Compressor("zstd").compress_many(CHUNKS)))
    assert raw / packed > 4, raw / packed


# --- limits and bad data -----------------------------------------------------------

# Builds 100 MB bombs by streaming zeros through the reference encoders (so the
# process never holds 100 MB itself), then decompresses each under a 1 MB
# limit and reports the time and how far the peak RSS rose.
BOMB_SCRIPT = """
import json, resource, sys, time, zlib
import zstandard
from replaywire._core import CodecError, decompress

MB = 1 << 20
zeros = bytes(MB)

def zstd(sized):
    cobj = zstandard.ZstdCompressor(level=3).compressobj(size=100 * MB if sized else -1)
    return b"".join(cobj.compress(zeros) for _ in range(100)) + cobj.flush()

def deflate():
    dobj = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"".join(dobj.compress(zeros) for _ in range(100)) + dobj.flush()

bombs = {"zstd sized": ("zstd", zstd(True)), "zstd unsized": ("zstd", zstd(False)),
         "deflate": ("deflate", deflate())}
report = {}
for name, (codec, bomb) in bombs.items():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        decompress(codec, bomb, MB)
        code = None
    except CodecError as e:
        code = e.code
    report[name] = {
        "code": code,
        "seconds": time.perf_counter() - start,
        "peak_rise_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before,
        "bomb_bytes": len(bomb),
    }
print(json.dumps(report))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_a_bomb_is_refused_quickly_without_inflating_it() -> None:
    out = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT], capture_output=True, check=True, text=True
    )
    report = json.loads(out.stdout)
    assert set(report) == {"zstd sized", "zstd unsized", "deflate"}
    for name, r in report.items():
        assert r["code"] == "payload_too_large", (name, r)
        assert r["bomb_bytes"] < 200_000, (name, r)
        assert r["seconds"] < 1.0, (name, r)
        # 1 MiB of output, the unsized zstd frame's 2 MiB window, some slack;
        # inflating the bomb would add 100 MB.
        assert r["peak_rise_kib"] < 16 * 1024, (name, r)


@pytest.mark.parametrize("codec", ["deflate", "zstd"])
@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"not compressed", bytes(range(256)), b"\x28\xb5\x2f\xfd\x00\x00\x00"],
)
def test_garbage_is_invalid_compression(codec: str, garbage: bytes) -> None:
    e = codec_error(decompress, codec, garbage, 1 << 20)
    assert e.code == "invalid_compression"
    assert e.message.startswith(f"invalid {codec} data")


@pytest.mark.parametrize("codec", ["deflate", "zstd"])
def test_truncated_or_extended_data_is_invalid(codec: str) -> None:
    packed = compress(codec, CHUNKS[1])
    for cut in range(0, len(packed), max(1, len(packed) // 50)):
        assert codec_error(decompress, codec, packed[:cut], 1 << 20).code == "invalid_compression"
    e = codec_error(decompress, codec, packed + b"\x00", 1 << 20)
    assert e.code == "invalid_compression"


def test_a_flipped_byte_in_a_zstd_frame_is_caught() -> None:
    packed = bytearray(compress("zstd", CHUNKS[2]))
    # A byte of the compressed content: the checksum (or the decoder) fails.
    packed[len(packed) // 2] ^= 0x40
    assert codec_error(decompress, "zstd", bytes(packed), 1 << 20).code == "invalid_compression"


def test_none_honours_the_limit_too() -> None:
    assert decompress("none", b"abc", 3) == b"abc"
    e = codec_error(decompress, "none", b"abcd", 3)
    assert (e.code, e.message) == (
        "payload_too_large",
        "none data decompresses to 4 bytes, over max_size 3",
    )


# --- bad arguments -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gzip", "ZSTD", "", "zstd:3"])
def test_an_unknown_codec_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="unknown codec"):
        Compressor(name)
    with pytest.raises(ValueError, match="unknown codec"):
        compress(name, b"x")
    with pytest.raises(ValueError, match="unknown codec"):
        decompress(name, b"x", 10)


@pytest.mark.parametrize(
    ("codec", "level"),
    [
        ("none", 1),
        ("deflate", -1),
        ("deflate", 10),
        ("zstd", 20),
        ("zstd", -131_073),
        ("zstd", 2**40),
    ],
)
def test_a_level_out_of_range_is_a_value_error(codec: str, level: int) -> None:
    with pytest.raises(ValueError, match=f"{codec} level {level} is out of range"):
        Compressor(codec, level)
    with pytest.raises(ValueError, match="out of range"):
        compress(codec, b"x", level)


def test_other_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="max_size must be >= 0"):
        decompress("zstd", compress("zstd", b"x"), -1)
    for codec in ("none", "deflate"):
        with pytest.raises(ValueError, match=f"{codec} takes no dictionary"):
            Compressor(codec, dictionary=b"d")
        with pytest.raises(ValueError, match=f"{codec} takes no dictionary"):
            decompress(codec, b"", 10, b"d")
    with pytest.raises(TypeError):
        Compressor("zstd").compress("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Compressor("zstd").compress_many("text")  # type: ignore[arg-type]


# --- dictionaries ----------------------------------------------------------------------


def test_a_trained_dictionary_round_trips_and_helps_deltas() -> None:
    training = make_corpus.deltas(make_corpus.incremental_events(range(100, 104), 1000))
    dictionary = _core.train_dictionary(training, 16 * 1024)
    assert len(dictionary) <= 16 * 1024
    reference = zstandard.ZstdCompressionDict(dictionary)
    compressor = Compressor("zstd", 3, dictionary)
    assert compressor.dictionary_id == reference.dict_id()
    assert (
        repr(compressor)
        == f"Compressor(codec='zstd', level=3, dictionary_id={reference.dict_id()})"
    )

    with_dict = compressor.compress_many(DELTAS)
    without = Compressor("zstd", 3).compress_many(DELTAS)
    assert sum(map(len, with_dict)) < 0.8 * sum(map(len, without))

    reader = zstandard.ZstdDecompressor(dict_data=reference)
    for delta, packed in zip(DELTAS[:50], with_dict, strict=False):
        assert zstandard.get_frame_parameters(packed).dict_id == reference.dict_id()
        assert reader.decompress(packed) == delta
        assert decompress("zstd", packed, len(delta), dictionary) == delta
    e = codec_error(decompress, "zstd", with_dict[0], 1 << 20)
    assert e.code == "invalid_compression"
    assert "Dictionary mismatch" in e.message

    # Frames the reference encoder makes with the dictionary read back too.
    theirs = zstandard.ZstdCompressor(level=3, dict_data=reference).compress(DELTAS[0])
    assert decompress("zstd", theirs, len(DELTAS[0]), dictionary) == DELTAS[0]


def test_training_needs_enough_samples() -> None:
    with pytest.raises(ValueError, match="cannot train a dictionary from 2 samples"):
        _core.train_dictionary([b"a", b"b"], 4096)
    with pytest.raises(ValueError, match="max_size must be >= 1"):
        _core.train_dictionary(DELTAS, 0)


def test_the_corpus_is_deterministic() -> None:
    assert make_corpus.session(3, 200) == make_corpus.session(3, 200)
    assert make_corpus.session(3, 200) != make_corpus.session(4, 200)
    assert make_corpus.full_snapshot(1) == make_corpus.full_snapshot(1)
