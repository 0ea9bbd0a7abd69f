"""Type stubs for ``replaywire._core``, the Rust sans-IO core.

This file is the whole boundary between Python and Rust. It is kept by hand
and checked against the compiled module with ``python -m mypy.stubtest
replaywire._core``.

Crossings are few and large: one ``FrameDecoder.feed`` per socket read, one
``ProtocolDecoder.decode`` per WebSocket message, one ``SessionBuffers.append`` per
accepted batch, one ``SessionBuffers.read`` per viewer delivery, one
``encode_chunks_copy`` per PostgreSQL flush. Nothing here is ever called once
per event.
"""

from collections.abc import Mapping, Sequence
from typing import Final, Protocol, final

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "BufferSlice",
    "BufferStats",
    "ClientMessage",
    "CoreError",
    "EventsBatch",
    "FrameDecoder",
    "GetSessionEvents",
    "MessageError",
    "ProtocolDecoder",
    "SessionBuffers",
    "SessionEnd",
    "SessionStart",
    "SnapshotMissing",
    "ViewerJoin",
    "ViewerLeave",
    "Viewport",
    "WebSocketError",
    "WsClose",
    "WsEvent",
    "WsMessage",
    "WsPing",
    "WsPong",
    "WsTooLarge",
    "__version__",
    "encode_binary",
    "encode_binary_deflated",
    "encode_chunks_copy",
    "encode_client_frame",
    "encode_close",
    "encode_frame",
    "encode_ping",
    "encode_pong",
    "encode_text",
    "encode_text_deflated",
    "join_events",
    "split_events",
]
# Event compression codecs.
__all__ += [
    "CODECS",
    "CodecError",
    "Compressor",
    "compress",
    "decompress",
    "train_dictionary",
]

__version__: Final[str]

# --- errors -----------------------------------------------------------------

class CoreError(Exception):
    """Base of every error the core raises."""

    message: str

class WebSocketError(CoreError):
    """The peer broke RFC 6455. The connection is over: send a close frame
    with ``close_code`` (1002 protocol error, 1007 invalid payload, 1008 policy,
    1009 too big) and stop reading."""

    close_code: int

class MessageError(CoreError):
    """An application message is invalid. Answer with
    ``{"type":"error","data":{"code": code, "message": message, "seq": seq}}``
    and keep the connection open."""

    code: str
    seq: int | None

# --- WebSocket frames ---------------------------------------------------------

OP_CONTINUATION: Final[int]
OP_TEXT: Final[int]
OP_BINARY: Final[int]
OP_CLOSE: Final[int]
OP_PING: Final[int]
OP_PONG: Final[int]

@final
class WsMessage:
    """A complete data message (all fragments joined)."""

    @property
    def is_text(self) -> bool: ...
    @property
    def data(self) -> bytes: ...

@final
class WsPing:
    @property
    def data(self) -> bytes: ...

@final
class WsPong:
    @property
    def data(self) -> bytes: ...

@final
class WsClose:
    """The peer's close frame. ``code`` is None when the frame had no body."""

    @property
    def code(self) -> int | None: ...
    @property
    def reason(self) -> str: ...

@final
class WsTooLarge:
    """A data message over the limits that the decoder skipped (only with
    ``skip_oversized=True``). ``size`` is its length as far as known: the
    sum of its frames' lengths or, when it only grew too large while being
    inflated, ``max_message_bytes + 1``. ``prefix`` is its first bytes (at
    most 4096; inflated if compressed; empty when a compressed message was
    too large on the wire), enough to read a protocol message's envelope."""

    @property
    def is_text(self) -> bool: ...
    @property
    def size(self) -> int: ...
    @property
    def prefix(self) -> bytes: ...

WsEvent = WsMessage | WsPing | WsPong | WsClose | WsTooLarge

@final
class FrameDecoder:
    """Server-side RFC 6455 frame decoder for one connection.

    ``feed`` takes whatever bytes the socket returned and gives back every
    event completed by them; an incomplete frame stays buffered (at most one
    frame header plus ``max_message_bytes`` of payload). Control frames may
    arrive between the fragments of a data message and are returned at once.
    On a violation ``feed`` raises ``WebSocketError``, unless the same call
    completed events before it: then it returns those, ``failed`` turns True
    and the next call (``feed(b"")`` will do) raises. Whatever follows the
    peer's close frame is discarded (RFC 6455 section 5.5.1).

    permessage-deflate (RFC 7692): with ``deflate_window_bits`` set (8..15,
    the peer's agreed ``client_max_window_bits``), RSV1 on the first frame
    of a data message means it is compressed. Each of its frames is
    inflated as it completes and the message is returned inflated; the
    output is bounded by ``max_message_bytes`` while inflating (1009), and
    text is UTF-8-checked on the inflated bytes (1007). Invalid DEFLATE data
    is 1002, as are RSV1 on a continuation or control frame, RSV2/RSV3, and
    RSV1 when ``deflate_window_bits`` is None. ``deflate_no_context_takeover``
    (the peer's ``client_no_context_takeover``) resets the inflater after
    each message; otherwise messages share the LZ77 window. A compressed
    message may hold up to twice ``max_message_bytes`` while it is received
    (its inflated part plus the frame in transit); the inflater itself takes
    about 47 KiB for the decoder's life, whatever the window.

    ``skip_oversized=True``: a data message (or data frame) over the limits
    does not fail the decoder; its payload is dropped as it arrives and one
    ``WsTooLarge`` is returned when its last frame ends. A compressed
    message can be skipped only with ``deflate_no_context_takeover`` (else
    its data is part of the context of the next message): otherwise it
    still fails with 1009. A message whose frame headers announce more than
    four times ``max_message_bytes`` is not skipped: 1009 at that header.
    """

    def __new__(
        cls,
        *,
        max_frame_bytes: int = 16 * 1024 * 1024,
        max_message_bytes: int = 16 * 1024 * 1024,
        require_mask: bool = True,
        deflate_window_bits: int | None = None,
        deflate_no_context_takeover: bool = False,
        skip_oversized: bool = False,
    ) -> FrameDecoder:
        """ValueError for a window outside 8..15, or
        ``deflate_no_context_takeover`` without a window."""
    def feed(self, data: bytes) -> list[WsEvent]: ...
    @property
    def buffered_bytes(self) -> int:
        """Bytes held for incomplete frames and messages."""
    @property
    def frame_remaining(self) -> int:
        """Payload bytes of the frame in progress that have not arrived yet
        (0 between frames and while skipping): known from its header, before
        they are buffered."""
    @property
    def skip_oversized(self) -> bool: ...
    @property
    def close_received(self) -> bool: ...
    @property
    def failed(self) -> bool:
        """True once the decoder has failed: the next ``feed`` raises."""
    @property
    def deflate_window_bits(self) -> int | None:
        """The peer's window when permessage-deflate was negotiated, else None."""
    @property
    def deflate_no_context_takeover(self) -> bool: ...

def encode_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One unmasked server frame. Raises ValueError for an unknown opcode or a
    control payload over 125 bytes."""

def encode_text(payload: bytes | str) -> bytes:
    """An unmasked text frame; ``payload`` must already be valid UTF-8."""

def encode_binary(payload: bytes) -> bytes: ...
def encode_ping(payload: bytes = b"") -> bytes: ...
def encode_pong(payload: bytes = b"") -> bytes: ...
def encode_close(code: int | None = 1000, reason: str = "") -> bytes:
    """A close frame; ``code=None`` sends an empty body. The reason is cut to
    fit 123 bytes at a character boundary."""

def encode_text_deflated(payload: bytes | str, *, window_bits: int = 15, level: int = 3) -> bytes:
    """A compressed text message (permessage-deflate, RFC 7692) in one
    unmasked frame with RSV1 set. ``payload`` follows ``encode_text``'s rules.

    The payload is deflated on its own, with no context shared with any
    other message (the server always agrees ``server_no_context_takeover``),
    so the frame may be sent unchanged to every connection whose agreed
    ``server_max_window_bits`` is at least ``window_bits``. Raw DEFLATE,
    sync-flushed, the final ``00 00 ff ff`` removed (section 7.2.1). The GIL
    is released for payloads of 64 KiB or more.

    ``window_bits`` is 9..15 (zlib cannot compress with 8: send such a peer
    plain frames), ``level`` 0..9; ValueError otherwise. Level 3 is the
    default: on rrweb-like JSON it gives 5.8x at 150-190 MB/s, where level 6
    gives 6.7x at 60-75 MB/s and level 1 3.9x at 330-410 MB/s (one core,
    ``benches/deflate_micro.py``).

    Short messages (under ~128 bytes: acks, control messages) are better
    sent plain with ``encode_text``: they barely shrink, and a plain frame
    is always allowed, compression negotiated or not.
    """

def encode_binary_deflated(payload: bytes, *, window_bits: int = 15, level: int = 3) -> bytes:
    """A compressed binary message; see ``encode_text_deflated``."""

def encode_client_frame(
    opcode: int,
    payload: bytes,
    mask: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
) -> bytes:
    """A masked client frame (``mask`` is 4 bytes; ``rsv`` the three reserved
    bits as 0..7). For tests, fuzz seeds and load generators only."""

# --- protocol messages --------------------------------------------------------

@final
class Viewport:
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...
    @property
    def device_pixel_ratio(self) -> float | None: ...

@final
class SessionStart:
    @property
    def session_id(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def user_agent(self) -> str | None: ...
    @property
    def viewport(self) -> Viewport | None: ...
    @property
    def start_time(self) -> float | None: ...
    @property
    def referrer(self) -> str | None: ...
    @property
    def time_zone(self) -> str | None: ...

@final
class EventsBatch:
    """A validated ``events_batch``. The events' raw bytes are kept exactly
    as received and shared, not copied, with the session buffer."""

    @property
    def session_id(self) -> str | None: ...
    @property
    def seq(self) -> int | None:
        """The tracker's per-session batch counter; None if it sent none."""
    @property
    def count(self) -> int: ...
    @property
    def nbytes(self) -> int:
        """Sum of the events' raw sizes."""
    @property
    def min_timestamp(self) -> float | None: ...
    @property
    def max_timestamp(self) -> float | None: ...
    @property
    def has_full_snapshot(self) -> bool:
        """An rrweb full snapshot (``type == 2``) is in the batch."""
    @property
    def has_meta(self) -> bool:
        """An rrweb meta event (``type == 4``) is in the batch."""
    @property
    def keyframe_offset(self) -> int | None:
        """Where in the batch a late viewer would start: the meta event
        before its last full snapshot, else that snapshot; None without a
        full snapshot. The same rule as ``SessionBuffers.keyframe_index``."""
    def payload(self) -> bytes:
        """The events as one JSON array, ``[e0,e1,...]``, each byte-for-byte
        as received: the stored chunk."""

@final
class SessionEnd:
    @property
    def session_id(self) -> str | None: ...

@final
class ViewerJoin:
    @property
    def session_id(self) -> str: ...
    @property
    def from_index(self) -> int | None: ...

@final
class ViewerLeave:
    @property
    def session_id(self) -> str: ...

@final
class GetSessionEvents:
    @property
    def session_id(self) -> str: ...
    @property
    def from_index(self) -> int: ...
    @property
    def limit(self) -> int | None: ...

@final
class SnapshotMissing:
    """``snapshot_missing``: the tracker could not deliver the page's full
    snapshot. ``reason`` is an identifier of 1 to 64 ASCII letters, digits,
    ``_``, ``-`` or ``.`` (``too_large``); ``bytes`` and ``limit_bytes`` are
    below 2**63."""

    @property
    def session_id(self) -> str | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def bytes(self) -> int: ...
    @property
    def limit_bytes(self) -> int | None: ...

ClientMessage = (
    SessionStart
    | EventsBatch
    | SessionEnd
    | ViewerJoin
    | ViewerLeave
    | GetSessionEvents
    | SnapshotMissing
)

@final
class ProtocolDecoder:
    """Decodes client JSON messages under limits fixed at construction.

    ``decode`` raises ``MessageError`` with code ``invalid_message`` (bad JSON
    or fields), ``unknown_message_type``, ``invalid_event`` (an event is not an
    object with an integer ``type`` and numeric ``timestamp``) or
    ``payload_too_large`` (over ``max_events_per_batch`` events or an event over
    ``max_event_bytes``); ``seq`` is set when the message had a readable one.
    """

    def __new__(
        cls, *, max_events_per_batch: int = 10_000, max_event_bytes: int = 64 * 1024 * 1024
    ) -> ProtocolDecoder: ...
    def decode(self, data: bytes) -> ClientMessage: ...

def split_events(payload: bytes) -> list[bytes]:
    """Split a stored chunk (a JSON array of events) into the events' raw
    bytes. Raises ValueError when ``payload`` is not a JSON array."""

def join_events(parts: list[bytes]) -> bytes:
    """Concatenate JSON arrays of events (``[..]`` each, as returned by
    ``EventsBatch.payload`` or ``SessionBuffers.read``) into one array."""

# --- session ring buffers ----------------------------------------------------

@final
class BufferSlice:
    """Events ``first_index .. first_index + count`` of one session."""

    @property
    def first_index(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def json(self) -> bytes:
        """The events as one JSON array, byte-for-byte as received."""

@final
class BufferStats:
    @property
    def sessions(self) -> int: ...
    @property
    def events(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def trimmed_events(self) -> int:
        """Events dropped from memory since start (still in storage)."""

@final
class SessionBuffers:
    """Recent events of every live session, in memory.

    Each session keeps at most ``max_events_per_session`` events and
    ``max_session_bytes`` bytes; all sessions together at most
    ``max_total_bytes``, trimming the least recently appended sessions first.
    Trimming drops the oldest events but, when it can, keeps the latest full
    snapshot and the meta event before it, so a late viewer can render.
    Every event gets a per-session index (0, 1, 2, ...) that never changes.
    Unknown session ids raise ``KeyError``.
    """

    def __new__(
        cls,
        *,
        max_events_per_session: int = 20_000,
        max_session_bytes: int = 32 * 1024 * 1024,
        max_total_bytes: int = 1024 * 1024 * 1024,
    ) -> SessionBuffers: ...
    def open(self, session_id: str, next_index: int = 0) -> bool:
        """Start buffering a session whose next event gets ``next_index``.
        Returns False (and changes nothing) if it is already open."""
    def close(self, session_id: str) -> bool:
        """Drop a session's buffer; False if it was not open."""
    def __contains__(self, session_id: str, /) -> bool: ...
    def __len__(self) -> int: ...
    def append(self, session_id: str, batch: EventsBatch) -> int:
        """Add a batch's events; returns the index given to its first event."""
    def next_index(self, session_id: str) -> int: ...
    def first_index(self, session_id: str) -> int:
        """Index of the oldest event still in memory (== next_index if none)."""
    def keyframe_index(self, session_id: str) -> int | None:
        """Index a late viewer should start from: the meta event before the
        latest full snapshot (or the snapshot itself, if no meta precedes it),
        when it is still in memory."""
    def read(
        self,
        session_id: str,
        from_index: int,
        max_events: int = 1_000_000,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> BufferSlice:
        """Events from ``max(from_index, first_index)`` on, stopping before
        ``max_events`` or ``max_bytes`` would be passed (but always at least
        one event when there is one)."""
    def stats(self) -> BufferStats: ...

# --- PostgreSQL COPY ---------------------------------------------------------

class _Chunk(Protocol):
    """What ``encode_chunks_copy`` reads of a chunk: the fields of
    ``replaywire.storage.base.Chunk``."""

    @property
    def session_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def first_index(self) -> int: ...
    @property
    def event_count(self) -> int: ...
    @property
    def first_timestamp(self) -> float | None: ...
    @property
    def last_timestamp(self) -> float | None: ...
    @property
    def codec(self) -> str: ...
    @property
    def received_at(self) -> float | None: ...
    @property
    def payload(self) -> bytes: ...

def encode_chunks_copy(
    chunks: Sequence[_Chunk], started_at: Mapping[str, float], stored_at: float
) -> bytes:
    """One complete PostgreSQL binary ``COPY`` stream (header, a tuple per
    chunk, trailer) for ``COPY chunks (...) FROM STDIN (FORMAT BINARY)``,
    with these 12 columns in this order:

    ======================  ===============  =================================
    ``session_id``          ``text``
    ``session_started_at``  ``timestamptz``  ``started_at[chunk.session_id]``
    ``seq``                 ``int8``
    ``first_index``         ``int8``
    ``last_index``          ``int8``         ``first_index + event_count - 1``
    ``event_count``         ``int4``
    ``first_ts``            ``float8``       ``first_timestamp`` (client ms),
                                             NULL when None
    ``last_ts``             ``float8``       ``last_timestamp``, NULL when None
    ``codec``               ``text``
    ``received_at``         ``timestamptz``  ``received_at``, NULL when None
    ``stored_at``           ``timestamptz``  ``stored_at``, on every row
    ``payload``             ``bytea``
    ======================  ===============  =================================

    Times are epoch seconds, rounded to the microsecond as
    ``datetime.fromtimestamp`` rounds them. Text is sent as UTF-8: the
    connection's ``client_encoding`` must be ``UTF8``.

    Raises ``KeyError(session_id)`` when a chunk's session is not in
    ``started_at``, and ``ValueError`` naming the chunk for what PostgreSQL
    would refuse (and so fail the whole COPY): a time that is not finite or
    outside ``timestamptz``'s range, an int outside its column's type, a
    negative ``event_count``, a NUL character in ``session_id`` or ``codec``,
    a value over 1 GiB. Nothing is written when anything is wrong.

    The payloads are copied once, into the returned bytes, with the GIL
    released.
    """

# --- event compression codecs ------------------------------------------------
#
# One ``Compressor.compress`` per viewer tick (the same bytes go to every
# viewer), one ``Compressor.compress_many`` per storage flush, one
# ``decompress`` per stored chunk read.

CODECS: Final[tuple[str, ...]]
"""The codec names: ``("none", "deflate", "zstd")``."""

class CodecError(CoreError):
    """Compressed data was refused, or compression failed. ``code`` is

    - ``payload_too_large``: the data would decompress to more than
      ``max_size`` bytes (found from the sizes zstd frames declare, or as
      soon as the output passes the limit, never after inflating it all);
    - ``invalid_compression``: not valid data of the codec (garbage,
      truncated, bytes after the end, a failed zstd checksum, a missing or
      wrong dictionary);
    - ``compression_failed``: the library failed (out of memory).

    A bad codec name, level or dictionary raises ``ValueError`` instead."""

    code: str

@final
class Compressor:
    """A codec and level, with the compression context kept between calls.

    Codecs and levels:

    - ``"zstd"``: standard zstd frames (RFC 8878) holding the content size
      and a checksum, readable by any zstd decoder. Levels 1..19 (default
      3; 0 means 3, as in zstd) and zstd's negative "fast" levels down to
      -131072, which trade ratio for speed.
    - ``"deflate"``: raw deflate (RFC 1951), no zlib or gzip header, as
      ``zlib.decompress(data, wbits=-15)`` and the browsers'
      ``DecompressionStream("deflate-raw")`` read it. Levels 0..9 (default 6).
    - ``"none"``: the bytes as they are; level 0.

    Every call makes one complete, independent frame or stream: outputs
    decompress on their own, in any order. What is kept is the context's
    memory and tables, which cost more to set up than compressing a small
    delta does; they are freed with the object. zstd's grows with the largest
    input seen: at level 3, ~60 KiB for 2 KB deltas, ~300 KiB for 13 KB
    chunks, ~3.5 MiB after a multi-MB snapshot (~50 MiB at level 19);
    deflate's is ~270 KiB.

    ``dictionary`` (zstd only): a dictionary from ``train_dictionary`` (or raw
    bytes of typical content). Frames then name its ``dictionary_id``, and
    ``decompress`` (and any other reader, such as a viewer) needs the same
    bytes. For deltas of a few events it doubles the ratio; see
    ``benches/codecs.py``.

    One thread at a time: while a call runs (large inputs are compressed
    with the GIL released), a call from another thread raises
    ``RuntimeError`` ("Already borrowed"); nothing is shared or corrupted.
    Give each thread its own compressor.

    Raises ``ValueError`` for an unknown codec, a level out of range, or a
    dictionary with a codec other than zstd or one zstd refuses.
    """

    def __new__(
        cls, codec: str, level: int | None = None, dictionary: bytes | None = None
    ) -> Compressor: ...
    @property
    def codec(self) -> str: ...
    @property
    def level(self) -> int:
        """The level in use (the default when none was given)."""
    @property
    def dictionary_id(self) -> int | None:
        """The id of the trained dictionary in use, which the frames carry;
        None without one (or with raw bytes as the dictionary)."""
    def compress(self, data: bytes) -> bytes:
        """``data`` compressed; with the GIL released from 64 KiB on."""
    def compress_many(self, items: Sequence[bytes], *, array_contents: bool = False) -> list[bytes]:
        """Each item compressed on its own, as ``compress`` would, in one call
        (one per storage flush). The GIL is released around the whole loop
        when the items total 64 KiB or more.

        With ``array_contents=True`` every item must be a JSON array (else
        ``ValueError``) and only what lies between its brackets, without
        the surrounding whitespace, is compressed. Stored chunks are
        compressed this way so that their zstd frames can be concatenated,
        between frames holding ``[``, ``,`` and ``]``, into one valid JSON
        document without decompressing them."""

def compress(codec: str, data: bytes, level: int | None = None) -> bytes:
    """``data`` compressed with a context made for this one call. For
    repeated calls a ``Compressor`` is faster (several times so on inputs of
    a few KB). Same codecs, levels and errors as ``Compressor``."""

def decompress(codec: str, data: bytes, max_size: int, dictionary: bytes | None = None) -> bytes:
    """``data`` decompressed (every concatenated zstd frame), refused with
    ``CodecError`` ``payload_too_large`` if the output would pass
    ``max_size`` bytes (``none`` included), or ``invalid_compression``.

    Never holds more than ``max_size + 1`` bytes of output: zstd frames that
    declare their sizes are checked before decoding; others are stopped when
    the output passes the limit. A zstd frame without a declared size (from a
    streaming encoder) also needs its window in memory, and is refused as
    ``payload_too_large`` if that window is over ``max_size`` rounded up to a
    power of two and at least 8 MiB (every level up to 19 fits that).

    ``dictionary``: for zstd frames made with one. The GIL is released for
    inputs of 16 KiB or more. ``ValueError`` for an unknown codec, a
    negative ``max_size``, or a dictionary with a codec other than zstd."""

def train_dictionary(samples: Sequence[bytes], max_size: int) -> bytes:
    """A zstd dictionary of at most ``max_size`` bytes trained on
    ``samples``, typical inputs (for viewer deltas: a few thousand recent
    deltas). zstd needs a hundred samples or more and about 100 times
    ``max_size`` bytes of them; with too few it raises ``ValueError``. Runs
    with the GIL released (around a second for 10 MB of samples)."""
