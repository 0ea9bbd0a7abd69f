"""HTTP content codings for large responses (``Accept-Encoding``).

Event pages are big and very repetitive JSON, so ``GET
/sessions/{id}/events`` answers in zstd or gzip when the client accepts one
(zstd preferred at equal weight: smaller and faster). A zstd page read from
storage is mostly the stored zstd chunks as they are, with small frames
between them (see :func:`replaywire.sessions.history.assemble_zstd`). Compression is done
by the Rust core, off the event loop for large bodies; gzip is the core's
raw deflate inside the RFC 1952 wrapper.
"""

from __future__ import annotations

import struct
import zlib

import trio

from .. import _core

CODINGS = ("zstd", "gzip")  # in order of preference
THREAD_BYTES = 256 * 1024  # bodies at least this big are compressed in a worker thread
MIN_BYTES = 1024  # smaller bodies are sent as they are
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, OS unknown


def negotiate(accept_encoding: str) -> str | None:
    """The coding to answer with for an ``Accept-Encoding`` value, or None
    for identity. Honours q-values (``q=0`` refuses a coding) and ``*``."""
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[name] = q
    best: tuple[float, str] | None = None
    for coding in CODINGS:
        q = weights.get(coding, weights.get("*", 0.0))
        if q > 0 and (best is None or q > best[0]):
            best = (q, coding)
    return None if best is None else best[1]


def _compress(coding: str, body: bytes) -> bytes:
    if coding == "zstd":
        return _core.compress("zstd", body, 3)
    deflated = _core.compress("deflate", body, 6)
    trailer = struct.pack("<II", zlib.crc32(body), len(body) & 0xFFFFFFFF)
    return _GZIP_HEADER + deflated + trailer


def zstd_frame(data: bytes) -> bytes:
    """``data`` as one small zstd frame, to glue between frames that are
    sent as stored (level 1: these are a few dozen bytes)."""
    return _core.compress("zstd", data, 1)


def encoded_headers(coding: str | None) -> list[tuple[bytes, bytes]]:
    """The headers for a body in ``coding`` (``Vary`` always, so caches
    keep the codings apart)."""
    headers = [(b"vary", b"Accept-Encoding")]
    if coding is not None:
        headers.append((b"content-encoding", coding.encode()))
    return headers


async def encode(coding: str | None, body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body in ``coding`` and the headers to send with it."""
    if coding is None or len(body) < MIN_BYTES:
        return body, encoded_headers(None)
    if len(body) >= THREAD_BYTES:
        encoded = await trio.to_thread.run_sync(_compress, coding, body)
    else:
        encoded = _compress(coding, body)
    return encoded, encoded_headers(coding)
