"""Accept-Encoding negotiation for event pages."""

from __future__ import annotations

import gzip

import pytest
import zstandard

from replaywire.http.encoding import encode, negotiate


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        ("", None),
        ("identity", None),
        ("gzip", "gzip"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "zstd"),  # a browser: zstd preferred at equal weight
        ("gzip;q=1.0, zstd;q=0.5", "gzip"),
        ("zstd;q=0, gzip", "gzip"),
        ("zstd;q=0, gzip;q=0", None),
        ("*", "zstd"),
        ("*;q=0.1, gzip;q=0.5", "gzip"),
        ("ZSTD ; Q=0.9", "zstd"),
        ("gzip;q=nonsense", None),
        ("br", None),
    ],
)
def test_negotiate(header: str, coding: str | None) -> None:
    assert negotiate(header) == coding


@pytest.mark.parametrize("size", [2000, 400_000])  # inline, and in a worker thread
async def test_encoded_bodies_decode_with_standard_decoders(size: int) -> None:
    body = (b'{"type":3,"data":{"source":1,"x":%d},"timestamp":1700000000000},' * size)[:size]
    zstd_body, headers = await encode("zstd", body)
    assert (b"content-encoding", b"zstd") in headers and (b"vary", b"Accept-Encoding") in headers
    assert zstandard.ZstdDecompressor().decompress(zstd_body) == body
    gzip_body, headers = await encode("gzip", body)
    assert (b"content-encoding", b"gzip") in headers
    assert gzip.decompress(gzip_body) == body
    assert len(gzip_body) < len(body) / 3 and len(zstd_body) < len(body) / 3


async def test_small_or_identity_bodies_stay_as_they_are() -> None:
    assert await encode(None, b"x" * 5000) == (b"x" * 5000, [(b"vary", b"Accept-Encoding")])
    assert (await encode("zstd", b"{}"))[0] == b"{}"
