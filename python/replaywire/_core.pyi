"""Type stubs for ``replaywire._core``, the Rust sans-IO core.

This file is the whole boundary between Python and Rust. It is kept by hand
and checked against the compiled module with ``python -m mypy.stubtest
replaywire._core``.

Crossings are few and large. A tracker connection crosses once per socket
read (``TrackerEngine.feed``: frames, messages, events, seq window, ring,
storage queue and acks, all in Rust); a storage flush once to take its
chunks (``ChunkQueue.take``) and once to encode them (``Flush.encode_copy``
or ``Flush.rows``); a durable ack release once per commit
(``TrackerEngine.release``). Viewers cross once per delivery
(``Ingest.read``) and the other connections once per read
(``FrameDecoder.feed``) and message (``ProtocolDecoder.decode_viewer``). Nothing
here is ever called once per event, and nothing on the tracker path once
per batch.
"""

from collections.abc import Mapping, Sequence
from typing import Final, Protocol, final

__all__ = [
    "CODECS",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "TRACKER_MESSAGE_TYPES",
    "BufferSlice",
    "BufferStats",
    "ChunkPayload",
    "ChunkQueue",
    "ClockSkew",
    "CodecError",
    "Compressor",
    "CoreError",
    "EventsBatch",
    "Flush",
    "FrameDecoder",
    "GetSessionEvents",
    "Ingest",
    "MessageError",
    "ProtocolDecoder",
    "RateTable",
    "SessionBuffers",
    "SessionEnd",
    "SessionStart",
    "SnapshotMissing",
    "TrackerEngine",
    "TrackerMessage",
    "ViewerJoin",
    "ViewerLeave",
    "ViewerMessage",
    "Viewport",
    "WebSocketError",
    "WsClose",
    "WsEvent",
    "WsMessage",
    "WsPing",
    "WsPong",
    "WsTooLarge",
    "__version__",
    "compress",
    "decompress",
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

TrackerMessage = SessionStart | EventsBatch | SessionEnd | SnapshotMissing
ViewerMessage = ViewerJoin | ViewerLeave | GetSessionEvents

@final
class ProtocolDecoder:
    """Decodes client JSON messages under limits fixed at construction:
    ``decode_tracker`` a tracker connection's, ``decode_viewer`` a viewer
    connection's.

    Both raise ``MessageError`` with code ``invalid_message`` (bad JSON
    or fields), ``unknown_message_type``, ``invalid_event`` (an event is not an
    object with an integer ``type`` and numeric ``timestamp``) or
    ``payload_too_large`` (over ``max_events_per_batch`` events or an event over
    ``max_event_bytes``); ``seq`` is set when the message had a readable one.
    A well-formed message of the other side raises ``not_allowed``.
    """

    def __new__(
        cls, *, max_events_per_batch: int = 10_000, max_event_bytes: int = 64 * 1024 * 1024
    ) -> ProtocolDecoder: ...
    def decode_tracker(self, data: bytes) -> TrackerMessage: ...
    def decode_viewer(self, data: bytes) -> ViewerMessage: ...

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

# --- the ingest hot path -------------------------------------------------------
#
# rust/src/ingest: one TrackerEngine per tracker connection, fed once per
# socket read, over state every engine shares (Ingest) and the storage
# writer's queue (ChunkQueue).

TRACKER_MESSAGE_TYPES: Final[list[str]]
"""The tracker message types ``Ingest.scrape`` counts, in its order."""

_ChunkRow = tuple[str, int, int, int, float | None, float | None, str, bytes, float | None]
"""A chunk as ``storage.Chunk``'s fields: session_id, seq, first_index,
event_count, first_timestamp, last_timestamp, codec, payload, received_at."""

@final
class ChunkQueue:
    """Accepted chunks waiting for storage, numbered by flush generation.
    The engines queue into it; the writer takes a whole flush at once. A
    chunk stays pending (found by session and seq) until its flush is
    committed; past ``max_pending_bytes`` of pending payload the engines
    stop with ``backpressure``."""

    def __new__(cls, *, batch_size: int, max_pending_bytes: int) -> ChunkQueue: ...
    @property
    def generation(self) -> int:
        """The flush that chunks queued now belong to (what durable acks wait for)."""
    @property
    def queued(self) -> int: ...
    @property
    def touched(self) -> int:
        """Sessions whose counters changed since the last flush was taken."""
    @property
    def pending_count(self) -> int: ...
    @property
    def pending_bytes(self) -> int: ...
    @property
    def max_pending_bytes(self) -> int: ...
    def has_room(self) -> bool: ...
    def set_spool_room(self, room: int | None) -> None:
        """While spooling, the bytes the spool still takes (None: not
        spooling); batches that would not fit are refused with
        ``storage_unavailable``."""
    def offer(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more fit in the spool on top of what is
        pending (always, when not spooling); remembered in ``refusing``."""
    @property
    def refusing(self) -> bool:
        """While spooling, the last batch offered was refused for want of room."""
    def put(
        self,
        session_id: str,
        seq: int,
        first_index: int,
        event_count: int,
        first_timestamp: float | None,
        last_timestamp: float | None,
        codec: str,
        payload: bytes,
        received_at: float | None,
    ) -> bool:
        """Queue a chunk built in Python; False if it is pending already."""
    def take(self) -> Flush:
        """Everything queued, as the flush of the current generation."""
    def commit(self, flush: Flush) -> None:
        """The flush committed (or was spooled): its chunks stop being pending."""
    def pending_generation(self, session_id: str, seq: int) -> int | None: ...
    def pending_chunks(self, session_id: str) -> list[_ChunkRow]:
        """The session's pending chunks, ordered by first index."""

_SharedRow = tuple[str, int, int, int, float | None, float | None, str, ChunkPayload, float | None]
"""A ``_ChunkRow`` whose payload stays in Rust."""

@final
class ChunkPayload:
    """A chunk's payload kept in Rust; ``bytes()`` builds it."""

    def __len__(self) -> int: ...
    def __bytes__(self) -> bytes: ...

@final
class Flush:
    """One flush's chunks, owned by the writer; encoded in its thread."""

    @property
    def generation(self) -> int: ...
    @property
    def sessions(self) -> list[str]:
        """Keys of the sessions whose counters changed in this flush."""
    @property
    def payload_bytes(self) -> int: ...
    def __len__(self) -> int: ...
    def chunk_sessions(self) -> list[str]:
        """Keys of the sessions that have chunks here, sorted."""
    def rows(self) -> list[_ChunkRow]: ...
    def shared_rows(self) -> list[_SharedRow]:
        """``rows()`` with each payload left in Rust (shared with the
        ring, not copied): for a backend that keeps them in memory."""
    def compress(self, codec: str, level: int | None = None) -> None:
        """Compress every raw chunk's array contents (GIL released)."""
    def encode_copy(self, started_at: dict[str, float], stored_at: float) -> bytes:
        """The chunks (the first of each session and seq) as one binary
        ``COPY`` stream, as ``encode_chunks_copy`` builds it; ValueError
        for what PostgreSQL would refuse (GIL released)."""

@final
class RateTable:
    """Fixed-window counters of one rate limit, counted by the engines and
    synced to Redis by ``CounterSync`` (see ``limits.windows``)."""

    def __new__(
        cls, name: str, limit: int, window_ms: int, *, max_keys: int, shared: bool
    ) -> RateTable: ...
    @property
    def name(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def window_ms(self) -> int: ...
    @property
    def shared(self) -> bool: ...
    def __len__(self) -> int: ...
    def retry_after(self, key: str, n: int, now_ms: int) -> int | None:
        """0 if ``n`` more fit now, else ms to wait; None when the table is full."""
    def take(self, key: str, n: int) -> None: ...
    def window(self, key: str) -> tuple[int, int, int] | None:
        """``(remote, unsynced, start_ms)`` of the key's window."""
    def evict(self, now_ms: int) -> int: ...
    def collect(self, hot_since_ms: int) -> list[tuple[str, int, int]]:
        """``(key, start_ms, delta)`` of every window to sync now."""
    def restore(self, keys: list[str]) -> None: ...
    def apply(self, rows: list[tuple[str, int, int, int]]) -> None:
        """``(key, start_ms, delta, total)`` per synced window."""

@final
class Ingest:
    """What every tracker engine shares: live sessions (seq windows, hot
    counters), their ring buffers (read as ``SessionBuffers`` is) and the
    storage queue; and the counters metrics read when scraped."""

    def __new__(
        cls,
        queue: ChunkQueue,
        *,
        max_events_per_session: int = 20_000,
        max_session_bytes: int = 32 * 1024 * 1024,
        max_total_bytes: int = 1024 * 1024 * 1024,
        max_seq_window: int = 4096,
        ack_buckets: list[float] = ...,
        session_limit: RateTable | None = None,
    ) -> Ingest: ...
    def set_session_limit(self, table: RateTable | None) -> None:
        """Count events per session in ``table`` (engines made afterwards)."""
    def open(
        self,
        key: str,
        *,
        next_index: int = 0,
        next_seq: int = 0,
        seqs_above: list[int] = ...,
        spooled: list[tuple[int, int]] = ...,
        event_count: int = 0,
        byte_count: int = 0,
        last_event_at: float | None = None,
        keyframe_index: int | None = None,
        clock_skew_ms: float | None = None,
    ) -> tuple[int, int]:
        """Open (or reopen an ended) session where storage left it; pending
        chunks in the queue and ``spooled`` ``(seq, end_index)`` spans count
        as stored. Returns ``(next_seq, next_index)``."""
    def end(self, key: str) -> bool:
        """Refuse the session's batches from now on (its ring stays)."""
    def close(self, key: str) -> bool:
        """Forget the session and free its ring."""
    def is_live(self, key: str) -> bool: ...
    def counters(
        self, key: str
    ) -> tuple[int, int, float | None, int | None, float | None, int] | None:
        """``(event_count, byte_count, last_event_at, keyframe_index,
        clock_skew_ms, next_seq)`` of a session, or None."""
    def scrape(
        self,
    ) -> tuple[int, int, int, int, list[tuple[str, int]], list[int], float]:
        """``(events, bytes, duplicates, acked, [(message type, count)],
        ack counts per bucket (then above the last), ack seconds sum)``."""
    def __contains__(self, session_id: str, /) -> bool: ...
    def __len__(self) -> int: ...
    def next_index(self, session_id: str) -> int: ...
    def first_index(self, session_id: str) -> int: ...
    def keyframe_index(self, session_id: str) -> int | None: ...
    def read(
        self,
        session_id: str,
        from_index: int,
        max_events: int = 1_000_000,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> BufferSlice: ...
    def stats(self) -> BufferStats: ...

_Stop = (
    tuple[str, SessionStart]  # ("start", message): open it, then started()
    | tuple[str, str, str]  # ("end", client id, key): end it, then ended()
    | tuple[str]  # ("backpressure",): wait for storage room
    | tuple[str, int | None, str]  # ("close", code, reason) / ("failed", close code, message)
)
_Notice = (
    # ("error", code, message, seq, key, limit)
    tuple[str, str, str, int | None, str | None, str | None]
    | tuple[str, str, SnapshotMissing]  # ("snapshot_missing", key, notice)
)

@final
class TrackerEngine:
    """One tracker connection's hot path (rust/src/ingest/engine.rs)."""

    def __new__(
        cls,
        ingest: Ingest,
        frames: FrameDecoder | None = None,
        *,
        max_sessions: int = 16,
        max_message_bytes: int = 64 * 1024 * 1024,
        max_event_bytes: int = 64 * 1024 * 1024,
        max_events_per_batch: int = 10_000,
        durable: bool = False,
        limit_messages: int = 0,
        limit_events: int = 0,
        window_ms: int = 10_000,
    ) -> TrackerEngine:
        """``frames``: the connection's decoder, whose rules (limits,
        permessage-deflate) the engine's own decoder takes; None when
        another codec decodes the frames (``feed_messages``)."""
    def feed(
        self, data: bytes, now: float, mono: float, committed: int
    ) -> tuple[bytes, _Stop | None, list[_Notice] | None, list[str] | None, int]:
        """Handle one read's bytes (``b""``: go on after a stop): ``(replies
        to send now, why it stopped or None, notices to log and record,
        session keys that got events, writer flags: 1 the queue was empty,
        2 it holds a full batch)``. ``now`` is the wall clock (epoch s),
        ``mono`` a monotonic one (ack latency), ``committed`` the writer's
        last committed flush."""
    def feed_from(
        self, fd: int, now: float, mono: float, committed: int
    ) -> tuple[bytes, _Stop | None, list[_Notice] | None, list[str] | None, int] | None:
        """``feed`` with what the non-blocking socket ``fd`` has to read,
        read straight into the engine's own buffer (no bytes object, no
        copy): the step, or None when it had nothing (the engine then lets
        go of an empty read buffer, so an idle connection holds none).
        Raises ``EOFError`` at the end of the stream and ``OSError`` when
        the read fails."""
    @property
    def bytes_read(self) -> int:
        """Bytes fed: read by ``feed_from`` and given to ``feed``."""
    def feed_messages(
        self, messages: Sequence[object], now: float, mono: float, committed: int
    ) -> tuple[bytes, _Stop | None, list[_Notice] | None, list[str] | None, int]:
        """``feed`` for messages another codec decoded (``is_text`` and
        ``data``, or ``is_text``, ``size`` and ``prefix`` when skipped)."""
    def release(self, committed: int, mono: float) -> bytes:
        """The replies that may go now (durable acks), in order."""
    def started(self, client_id: str, key: str) -> bool:
        """The session it stopped on is open: answer ``session_started``."""
    def ended(self, client_id: str) -> None:
        """The session it stopped on has ended: answer ``session_ended``."""
    def refuse(
        self, code: str, message: str, seq: int | None = None, retry_after_ms: int | None = None
    ) -> None:
        """Answer the message it stopped on with an error."""
    @property
    def waiting_for(self) -> int:
        """The flush the first held reply needs (0: none held)."""
    @property
    def waiting(self) -> int: ...
    @property
    def messages(self) -> int:
        """Data messages its own frame decoder completed."""
    @property
    def held(self) -> int:
        """Messages decoded and not handled yet (after a stop)."""
    @property
    def buffered_bytes(self) -> int: ...
    @property
    def buffer_capacity(self) -> int:
        """Bytes allocated for what the connection holds between reads
        (frame buffer, decoded messages, replies): zero once it is idle."""
    @property
    def frame_remaining(self) -> int: ...
    @property
    def failed(self) -> bool: ...
    @property
    def close_received(self) -> bool: ...
    @property
    def session_keys(self) -> list[str]: ...

@final
class ClockSkew:
    """A session's clock-skew estimate, ms (rust/src/ingest/skew.rs)."""

    def __new__(cls, estimate: float | None = None) -> ClockSkew: ...
    def add(self, max_timestamp: float | None, received_at: float) -> float | None: ...
    @property
    def estimate(self) -> float | None: ...

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
