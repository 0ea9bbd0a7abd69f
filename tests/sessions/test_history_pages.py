"""History pages in zstd: stored zstd chunks go out as stored, and the
concatenated frames decode, with any standard zstd decoder, to exactly the
page a client reading plain JSON gets."""

from __future__ import annotations

import dataclasses
import io
import json

import zstandard
from hypothesis import given
from hypothesis import strategies as st

from replaywire import _core
from replaywire.sessions.history import assemble, assemble_parts, assemble_zstd, raw_payload
from replaywire.storage import Chunk

MAX = 1 << 20


def unzstd(data: bytes) -> bytes:
    """What a browser or ``zstd -d`` does: read every concatenated frame."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    return reader.read()


def chunks_of(sizes: list[int], codecs: list[str]) -> list[Chunk]:
    chunks, index = [], 0
    for seq, (size, codec) in enumerate(zip(sizes, codecs, strict=True)):
        events = [json.dumps({"type": 3, "timestamp": index + i}) for i in range(size)]
        raw = ("[" + ",".join(events) + "]").encode()
        payload = (
            raw
            if codec == "none"
            else _core.Compressor(codec).compress_many([raw], array_contents=True)[0]
        )
        chunks.append(Chunk("s", seq, index, size, None, None, codec, payload))
        index += size
    return chunks


@st.composite
def pages(draw: st.DrawFn) -> tuple[list[Chunk], list[Chunk], int, int]:
    n = draw(st.integers(0, 8))
    sizes = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    codecs = draw(st.lists(st.sampled_from(["none", "zstd", "deflate"]), min_size=n, max_size=n))
    chunks = chunks_of(sizes, codecs)
    queued = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    stored = [c for c, q in zip(chunks, queued, strict=True) if not q]
    # Queued chunks are always raw: the writer compresses at flush.
    pending = [decompressed([c])[0] for c, q in zip(chunks, queued, strict=True) if q]
    total = sum(sizes)
    return stored, pending, draw(st.integers(0, total + 1)), draw(st.integers(1, total + 2))


def decompressed(chunks: list[Chunk]) -> list[Chunk]:
    return [dataclasses.replace(c, codec="none", payload=raw_payload(c, MAX)) for c in chunks]


@given(pages())
def test_zstd_page_decodes_to_the_plain_page(
    page: tuple[list[Chunk], list[Chunk], int, int],
) -> None:
    stored, pending, from_index, limit = page
    plain = assemble(decompressed(stored), decompressed(pending), from_index, limit)
    packed = assemble_zstd(stored, pending, from_index, limit, MAX)
    assert (packed.first_index, packed.count, packed.codec) == (
        plain.first_index,
        plain.count,
        "zstd",
    )
    assert json.loads(unzstd(packed.events)) == json.loads(plain.events)
    # Whole stored zstd chunks inside the page are sent byte for byte.
    for chunk in stored:
        inside = from_index <= chunk.first_index and chunk.end_index <= plain.next_index
        if chunk.codec == "zstd" and chunk.event_count and inside:
            assert chunk.payload in packed.events


def test_chunks_compressed_before_the_contents_rule_still_read() -> None:
    """A chunk whose compressed payload is the whole array (written before
    only the contents were compressed) decompresses to the same events."""
    raw = b'[{"type":3,"timestamp":1}]'
    old = Chunk("s", 0, 0, 1, None, None, "zstd", _core.compress("zstd", raw))
    contents = _core.Compressor("zstd").compress_many([raw], array_contents=True)[0]
    new = Chunk("s", 0, 0, 1, None, None, "zstd", contents)
    assert raw_payload(old, MAX) == raw_payload(new, MAX) == raw


@given(pages())
def test_a_page_in_parts_is_the_plain_page(page: tuple[list[Chunk], list[Chunk], int, int]) -> None:
    stored, pending, from_index, limit = page
    plain = assemble(decompressed(stored), decompressed(pending), from_index, limit)
    parts = assemble_parts(stored, pending, from_index, limit, MAX)
    assert (parts.first_index, parts.count) == (plain.first_index, plain.count)
    assert json.loads(b"".join(parts.parts)) == json.loads(plain.events)
