"""The pure-Python WebSocket codec (``WS_BACKEND=wsproto``): wsproto reads
the frames instead of the Rust core, behind the same :class:`WebSocket`
interface, so the tracker and viewer protocols run unchanged on it.

It exists to be measured against (``python -m benches --ws-backend
rust,wsproto``) and as a fallback: it is what a careful pure-Python trio
server (trio-websocket is built on wsproto) pays per byte it reads.

What wsproto does here: frame parsing, unmasking, fragment reassembly, UTF-8
validation of text (wsproto decodes text to ``str``; it is encoded back to
UTF-8 bytes for the protocol layer, a cost a wsproto server pays anyway),
close and ping handling (and the heartbeat's pings), and permessage-deflate
inflation through wsproto's own ``PerMessageDeflate`` extension
(:class:`BoundedDeflate`, which bounds the output). The opening handshake
and the extension negotiation stay the server's own (``ws.handshake``,
``ws.extensions``), so both backends answer the same offers the same way.

What it does not do: the server's messages reach :meth:`send` already framed
(``protocol/frames.py`` frames a delta once for every viewer), and a server
frame's bytes do not depend on who parses the client's frames, so those go
out as given. :meth:`encode_message` frames with wsproto.

Differences from the Rust codec, all at the edges:

- Oversized messages: a message over ``MAX_MESSAGE_BYTES`` is skipped as it
  arrives (never buffered) and answered ``payload_too_large``, or closed
  with 1009 when it is compressed with the client's context kept, as with
  Rust. ``MAX_FRAME_BYTES`` is not checked on its own (wsproto streams a
  frame's payload), only through the message limit. A message whose frame
  headers announce more than ``SKIP_CEILING_FACTOR`` times
  ``MAX_MESSAGE_BYTES`` is closed with 1009 at that header, as with Rust
  (:class:`HeaderCeiling`, an extension that sees each header).
- UTF-8: wsproto checks text incrementally per received chunk, so an invalid
  byte fails the connection (1007) as soon as it is read, like Rust; the
  close reason text differs.
- The in-flight budget (``MAX_INFLIGHT_BYTES``) counts what a connection has
  buffered of its message so far; Rust also counts what the current frame's
  header announces, so it reserves a large frame before reading it.

Resource handling and errors are those of :class:`WebSocket`: wsproto's
``ParseFailed`` (turned into a ``CloseConnection`` event while the
connection is still open) is answered with a close frame carrying its code
and ends in :class:`ConnectionClosed`.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from .. import _core
from .budget import InflightBudget
from .connection import SKIP_CEILING_FACTOR, CloseHook, WebSocket
from .extensions import MIN_COMPRESS_BYTES, DeflateParams
from .messages import PREFIX_BYTES, DataMessage, TooLarge
from .messages import Message as DataMessageText

__all__ = ["BoundedDeflate", "HeaderCeiling", "WsprotoWebSocket"]


class HeaderCeiling(Extension):
    """Fails the connection with 1009 at the frame header that takes a data
    message past ``ceiling`` bytes on the wire, before its payload is read.
    wsproto hands every frame header to the extensions (and nothing else
    does); this one only reads the length and claims no reserved bit."""

    name = "replaywire-header-ceiling"  # never offered nor negotiated

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._announced = 0  # by the frames of the data message in progress

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if not opcode.iscontrol():
            if opcode is not Opcode.CONTINUATION:
                self._announced = 0
            self._announced += payload_length
            if self._announced > self.ceiling:
                return CloseReason.MESSAGE_TOO_BIG
        return RsvBits(False, False, False)


class BoundedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, already agreed by our handshake, whose
    inflation is bounded by ``limit`` bytes per message, as the Rust codec's
    (stock wsproto inflates a read in one call: 256 KiB of deflate could
    become 256 MB at once). A message that inflates past the limit fails
    the connection with 1009 when the client keeps its compression context
    (the next message depends on this one's bytes); with
    ``client_no_context_takeover`` it is skipped instead: ``overflowed`` is
    set until :meth:`message_done` and the rest of it is not inflated."""

    def __init__(self, params: DeflateParams, limit: int) -> None:
        super().__init__(
            client_no_context_takeover=params.client_no_context_takeover,
            # zlib cannot inflate with fewer than 9 bits; a 9-bit window
            # reads what an 8-bit one wrote.
            client_max_window_bits=max(9, params.client_max_window_bits),
            server_no_context_takeover=True,
            server_max_window_bits=max(9, params.server_max_window_bits),
        )
        self._enabled = True  # negotiated by ws.extensions, not by wsproto
        self.limit = limit
        self.inflated = 0
        self.overflowed = False

    def message_done(self) -> None:
        self.inflated = 0
        self.overflowed = False

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        if self.overflowed:
            return b""
        assert self._decompressor is not None
        try:
            out = self._decompressor.decompress(data, self.limit - self.inflated + 1)
        except zlib.error:
            return CloseReason.PROTOCOL_ERROR  # 1002, as Rust (docs/protocol.md); wsproto: 1007
        return self._count(out, more=bool(self._decompressor.unconsumed_tail))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self.overflowed and fin:  # skipped: start the next message afresh
            self._decompressor = None
            self._inbound_compressed = None
            return b""
        # The flush of the sync marker yields at most what zlib still holds.
        result = super().frame_inbound_complete(proto, fin)
        if result is CloseReason.INVALID_FRAME_PAYLOAD_DATA:  # only zlib failing on the tail
            return CloseReason.PROTOCOL_ERROR
        if isinstance(result, bytes):
            return self._count(result, more=False)
        return result

    def _count(self, out: bytes, *, more: bool) -> bytes | CloseReason:
        self.inflated += len(out)
        if self.inflated > self.limit or more:
            if not self.client_no_context_takeover:
                return CloseReason.MESSAGE_TOO_BIG
            self.overflowed = True
        return out


class WsprotoWebSocket(WebSocket):
    """One accepted WebSocket connection whose client frames wsproto reads."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        initial: bytes = b"",
        *,
        max_message_bytes: int,
        on_close: CloseHook | None = None,
        deflate: DeflateParams | None = None,
        budget: InflightBudget | None = None,
    ) -> None:
        self._setup(stream, b"", on_close, deflate, budget)
        self._max_message_bytes = max_message_bytes
        self._inflater = BoundedDeflate(deflate, max_message_bytes) if deflate else None
        extensions: list[Extension] = [HeaderCeiling(SKIP_CEILING_FACTOR * max_message_bytes)]
        if self._inflater is not None:
            extensions.append(self._inflater)
        self._conn = Connection(ConnectionType.SERVER, extensions)
        # A violation read after messages the caller has not answered yet:
        # the (code, reason) to fail with on the next receive().
        self._failure: tuple[int, str] | None = None
        self._pending = initial
        # The data message in progress: its parts, its size so far, and,
        # once it is over the limit, its first bytes.
        self._parts: list[bytes] = []
        self._size = 0
        self._prefix: bytes | None = None
        self._encoders: dict[int | None, Connection] = {}

    @property
    def close_pending(self) -> bool:
        return self._close_received is not None or self._failure is not None

    @property
    def frame_decoder(self) -> None:
        """None: wsproto decodes the frames (see :meth:`feed_engine`)."""
        return None

    def idle_wait(self, engine: _core.TrackerEngine) -> None:
        """None: a read of wsproto's codec waits as it always did (its
        need is its own, and :meth:`receive` may read several times)."""
        return None

    async def feed_engine(self, engine: _core.TrackerEngine, committed: int) -> Any:
        """Read once and hand the messages wsproto decoded to a tracker
        engine (``feed_messages``): both codecs share one protocol
        implementation. Pings, closes and violations are handled here,
        as by :meth:`receive`."""
        messages = await self.receive()
        return engine.feed_messages(messages, time.time(), time.perf_counter(), committed)

    async def receive(self) -> list[DataMessage]:
        """As :meth:`WebSocket.receive`, with wsproto's codec (and the same
        order: messages first, then the close or the failure)."""
        conn = self._conn
        while True:
            await self._answer_held_close()
            if self._failure is not None:
                await self._fail(*self._failure)
                raise self._closed  # type: ignore[misc]
            conn.receive_data(await self._read(self._size if self._prefix is None else 0))
            messages: list[DataMessage] = []
            for event in conn.events():
                if isinstance(event, (TextMessage, BytesMessage)):
                    done = self._collect(event)
                    if done is not None:
                        messages.append(done)
                elif isinstance(event, Ping):
                    # Once our close frame is out no pong may follow it
                    # (wsproto would raise LocalProtocolError): not answered.
                    if conn.state is ConnectionState.OPEN and not self._close_sent:
                        await self.send(conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if conn.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED):
                        self._close_received = (_received_code(event), event.reason or "")
                    else:
                        # wsproto reports a protocol violation as a close
                        # event without a close frame: the state did not move.
                        self._failure = (int(event.code), event.reason or "protocol error")
                    break  # wsproto reads nothing past either
            if messages:
                self.messages_received += len(messages)
                return messages

    def encode_message(
        self, data: bytes | str, *, binary: bool = False, compress: bool = True
    ) -> bytes:
        """As :meth:`WebSocket.encode_message`, framed (and compressed) by
        wsproto: one encoder connection per window size, without context."""
        deflate = self.deflate
        bits: int | None = None
        if (
            compress
            and deflate is not None
            and deflate.server_compresses
            and len(data) >= MIN_COMPRESS_BYTES
        ):
            bits = deflate.server_max_window_bits
        encoder = self._encoders.get(bits)
        if encoder is None:
            extensions: list[Extension] = []
            if bits is not None:
                extensions.append(BoundedDeflate(DeflateParams(bits, 15), 0))
            encoder = self._encoders[bits] = Connection(ConnectionType.SERVER, extensions)
        if binary:
            payload = data.encode() if isinstance(data, str) else data
            return encoder.send(BytesMessage(data=payload))
        text = data if isinstance(data, str) else data.decode()  # ValueError on bad UTF-8
        return encoder.send(TextMessage(data=text))

    def _close_frame(self, code: int | None, reason: str = "") -> bytes:
        if code is None:  # wsproto sends an empty body for this very member
            return self._conn.send(CloseConnection(code=CloseReason.NO_STATUS_RCVD))
        return self._conn.send(CloseConnection(code=code, reason=reason))

    def _ping_frame(self) -> bytes:
        # wsproto refuses a ping unless the connection is open both ways.
        if self._conn.state is not ConnectionState.OPEN:
            return b""
        return self._conn.send(Ping())

    def _collect(self, event: TextMessage | BytesMessage) -> DataMessage | None:
        """Add one part of a data message; the message once it is complete."""
        chunk = event.data.encode() if isinstance(event.data, str) else bytes(event.data)
        self._size += len(chunk)
        inflater = self._inflater
        if self._prefix is None:
            if self._size > self._max_message_bytes or (inflater and inflater.overflowed):
                self._prefix = b"".join([*self._parts, chunk])[:PREFIX_BYTES]
                self._parts = []
            else:
                self._parts.append(chunk)
        if not event.message_finished:
            return None
        is_text = isinstance(event, TextMessage)
        message: DataMessage
        if self._prefix is not None:
            size = self._size
            if inflater is not None and inflater.overflowed:
                size = self._max_message_bytes + 1  # as far as it was inflated
            message = TooLarge(is_text, size, self._prefix)
        else:
            parts = self._parts
            message = DataMessageText(is_text, parts[0] if len(parts) == 1 else b"".join(parts))
        self._parts, self._size, self._prefix = [], 0, None
        if inflater is not None:
            inflater.message_done()
        if self._budget is not None:
            self._budget.release(self)
        return message


def _received_code(event: CloseConnection) -> int | None:
    """The code of a received close frame; None when it had no body (wsproto
    reports 1005 then)."""
    return None if event.code == CloseReason.NO_STATUS_RCVD else int(event.code)
