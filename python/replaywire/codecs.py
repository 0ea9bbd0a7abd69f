"""The codecs: one row each, and every other place reads them from here.

A codec compresses a JSON array of events: for stored chunks
(``STORAGE_CODEC``), for viewers' binary frames (``?codec=`` on the viewer's
URL; docs/protocol.md, "Codecs"), and for REST pages. Each row says what
the rest of the server needs to know of it:

- ``name``: what clients, configuration and storage call it;
- ``wire_id``: the codec byte of a binary events frame;
- ``compressor``: the Rust core's compressor (and decompressor) for it,
  as :class:`replaywire._core.Compressor` and ``_core.decompress`` name it;
- ``level``: the :class:`~replaywire.config.Config` attribute with the
  level viewer frames are compressed at (None: not compressed);
- ``dictionary``: compressed with the server's dictionary
  (``VIEWER_DICTIONARY``), so offered only when it has one;
- ``storage``: whether stored chunks may use it.

Adding a codec: a row here, the Rust core's compressor if it is a new
algorithm, and the JavaScript viewer's decoder (``js/viewer/src/frames.js``)
if the browser should read it. ``tests/test_codecs_registry.py`` fails
when the JavaScript viewer, docs/protocol.md or the OpenAPI document
disagree with this table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BY_NAME",
    "BY_WIRE_ID",
    "REGISTRY",
    "STORAGE_CODECS",
    "VIEWER_CODECS",
    "Codec",
]


@dataclass(frozen=True, slots=True)
class Codec:
    name: str
    wire_id: int
    compressor: str
    level: str | None
    dictionary: bool = False
    storage: bool = True


REGISTRY: tuple[Codec, ...] = (
    Codec("none", 0, "none", None),
    Codec("deflate", 1, "deflate", "viewer_deflate_level"),
    Codec("zstd", 2, "zstd", "viewer_zstd_level"),
    Codec("zstd-dict", 3, "zstd", "viewer_zstd_level", dictionary=True, storage=False),
)

BY_NAME: dict[str, Codec] = {codec.name: codec for codec in REGISTRY}
BY_WIRE_ID: dict[int, Codec] = {codec.wire_id: codec for codec in REGISTRY}
STORAGE_CODECS: tuple[str, ...] = tuple(c.name for c in REGISTRY if c.storage)
VIEWER_CODECS: tuple[str, ...] = tuple(c.name for c in REGISTRY)
