"""A WebSocket connection: the Rust frame codec driven over a trio stream.

The codec is sans-IO; this class owns the I/O around it. One ``receive``
call reads once from the socket and hands *every* complete data message in
that read to the caller, so a tracker that pipelines batches costs one
crossing into Rust per read, not per message, and the caller can answer all
of them with a single write.

Resource handling: the connection owns its stream. ``aclose`` (or leaving
the ``async with`` block) closes it; a close frame is sent first when none
was sent yet.

Compression: when permessage-deflate was negotiated (``deflate`` is set),
the codec inflates what the client sends; :meth:`WebSocket.encode_message`
compresses what the server sends, each message on its own (no context is
kept between messages), and leaves short messages plain.
:meth:`WebSocket.send` writes frames as given, compressed or not, so a
frame encoded once can go to many connections.

Heartbeat: the connection notes since when it has been waiting for the peer
(``idle_since``) and when it was pinged (``pinged_at``); the server's one
sweeper (:class:`~.heartbeat.Heartbeat`) reads them, pings with
:meth:`WebSocket.ping_now` and drops dead peers with :meth:`WebSocket.abort`.

Error handling: when the peer breaks RFC 6455 the codec raises
``WebSocketError`` with the close code to send; ``receive`` sends that close
frame, counts it, and raises :class:`ConnectionClosed`. A peer that goes
away without a close handshake also ends in :class:`ConnectionClosed`
(code 1006, as RFC 6455 says for an abnormal closure).

Order: messages the peer completed before its close frame, or before a
violation, in the same read are returned first, so that the caller answers
them (a tracker's batch is acked); the next ``receive`` then answers the
close (or fails the connection) and raises. What the peer sends after its
close frame is ignored. None of this depends on how TCP split the bytes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, NoReturn, Protocol

import trio

from .. import _core
from ..errors import ConnectionClosed as ConnectionClosed
from .budget import FREE_BYTES, InflightBudget
from .extensions import MIN_COMPRESS_BYTES, DeflateParams
from .messages import DataMessage

READ_SIZE = 256 * 1024
PING = _core.encode_ping(b"")
SKIP_CEILING_FACTOR = 4
"""A message over ``MAX_MESSAGE_BYTES`` is skipped (and answered) as long
as its frame headers announce at most this many times the limit; past it
the connection is closed with 1009 at the header. The Rust codec's
``SKIP_CEILING_FACTOR``; ``tests/e2e/test_ws_skip_ceiling.py`` checks that
both codecs agree."""


class CloseHook(Protocol):
    """Called with the code of every close frame sent or received (metrics)."""

    def __call__(self, code: int, *, local: bool) -> None: ...


class WebSocket:
    """One accepted WebSocket connection (server side).

    The frame codec is the Rust core's; :class:`~.wsproto_backend.WsprotoWebSocket`
    is the same connection with wsproto's codec (``WS_BACKEND=wsproto``): it
    overrides :meth:`receive` and the control frames, and shares the rest.

    Slots, not a ``__dict__``: a server holds one per open connection, and
    most of them sit idle (see docs/benchmarks.md, idle connections)."""

    __slots__ = (
        "_budget",
        "_close_received",
        "_close_sent",
        "_closed",
        "_decoder",
        "_fileno",
        "_on_close",
        "_pending",
        "_ping_due",
        "_readable",
        "_send_lock",
        "_sent_close",
        "_socket",
        "_stream",
        "_tail",
        "bytes_received",
        "bytes_sent",
        "deflate",
        "idle_since",
        "messages_received",
        "pinged_at",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        decoder: _core.FrameDecoder,
        initial: bytes = b"",
        *,
        on_close: CloseHook | None = None,
        deflate: DeflateParams | None = None,
        budget: InflightBudget | None = None,
    ) -> None:
        self._decoder: _core.FrameDecoder | None = decoder
        self._setup(stream, initial, on_close, deflate, budget)

    def _setup(
        self,
        stream: trio.abc.Stream,
        initial: bytes,
        on_close: CloseHook | None,
        deflate: DeflateParams | None,
        budget: InflightBudget | None,
    ) -> None:
        """State shared by both codecs: the stream, sends, close, counters."""
        self._stream = stream
        self.deflate = deflate
        """permessage-deflate as agreed in the handshake, or None."""
        self._pending = initial
        self._readable = False  # idle_wait found the socket readable: _read needn't look
        # Made on first use (_lock): an idle tracker's few frames all go out
        # with write_now, and a lock per connection is a few hundred bytes.
        self._send_lock: trio.Lock | None = None
        sock = getattr(stream, "socket", None)
        self._socket: trio.socket.SocketType | None = sock  # see _read
        self._fileno = sock.fileno() if sock is not None else -1  # for write_now
        self._tail = b""  # unwritten rest of a write_now
        self._ping_due = False  # the heartbeat's ping, held back while a task sends
        self._close_sent = False
        # Our own close frame, once sent: what a send after it raises until
        # the handshake finishes (not a made-up 1006: a task acking while
        # the server closes with 1001 must report 1001).
        self._sent_close: ConnectionClosed | None = None
        self._closed: ConnectionClosed | None = None
        # The peer's close frame (code, reason), read with messages the
        # caller has not answered yet: answered by the next receive().
        self._close_received: tuple[int | None, str] | None = None
        self._on_close = on_close
        self._budget = budget
        self.idle_since: float | None = None
        """While waiting for the peer's next bytes: since when (trio clock)."""
        self.pinged_at: float | None = None
        """When the heartbeat pinged the peer, until it next sends anything."""
        self.messages_received = 0
        self.bytes_received = 0
        self.bytes_sent = 0

    @property
    def closed(self) -> ConnectionClosed | None:
        return self._closed

    @property
    def _sending(self) -> bool:
        """A task holds the send lock: it is writing frames."""
        return self._send_lock is not None and self._send_lock.locked()

    def _lock(self) -> trio.Lock:
        """The send lock, made the first time a task waits to send."""
        if self._send_lock is None:
            self._send_lock = trio.Lock()
        return self._send_lock

    @property
    def close_pending(self) -> bool:
        """The peer's close (or a violation) came with the messages last
        returned: the next :meth:`receive` ends the connection. A caller
        with answers to those messages still queued sends them first."""
        return self._close_received is not None or (
            self._decoder is not None and self._decoder.failed
        )

    async def receive(self) -> list[DataMessage]:
        """Wait for data messages; return all of those completed by one read.

        Pings are answered and pongs dropped here. A message over the
        limits comes as ``WsTooLarge`` when the decoder skips such messages.
        Raises :class:`ConnectionClosed` when the peer closes or breaks the
        protocol, once the messages that came before were returned (see
        "Order" above). Before each read, a connection with a large message
        in progress takes its share of the in-flight budget, waiting
        (unread) while the budget is busy."""
        decoder = self._decoder
        assert decoder is not None, "receive() on a connection fed to a tracker engine"
        while True:
            await self._answer_held_close()
            # A decoder that failed after returning messages raises now,
            # without waiting for bytes that may never come.
            if decoder.failed:
                data = b""
            else:
                data = await self._read(decoder.buffered_bytes + decoder.frame_remaining)
            try:
                events = decoder.feed(data)
            except _core.WebSocketError as exc:
                await self._fail(exc.close_code, exc.message)
                raise self._closed from exc  # type: ignore[misc]
            messages: list[DataMessage] = []
            for event in events:
                if isinstance(event, (_core.WsMessage, _core.WsTooLarge)):
                    messages.append(event)
                elif isinstance(event, _core.WsPing):
                    await self.send(_core.encode_pong(event.data))
                elif isinstance(event, _core.WsClose):
                    self._close_received = (event.code, event.reason)
            if messages:
                self.messages_received += len(messages)
                return messages

    @property
    def frame_decoder(self) -> _core.FrameDecoder | None:
        """The Rust frame decoder, for a tracker engine to take its rules
        from (None with the wsproto codec: it decodes the frames itself, and
        once :meth:`feed_engine` was called)."""
        return self._decoder

    async def feed_engine(self, engine: _core.TrackerEngine, committed: int) -> Any:
        """Read once and feed the bytes to a tracker engine, which decodes
        the frames itself (pings, the close frame and violations too: it
        reports them, see :meth:`answer_close` and :meth:`fail`); its step.
        The in-flight budget applies as in :meth:`receive`."""
        # The engine decodes with a decoder of its own (made with this one's
        # rules): this one is not needed from now on, and an idle connection
        # need not keep it.
        self._decoder = None
        need = engine.buffered_bytes + engine.frame_remaining
        socket = self._socket
        if (
            socket is None
            or self._pending
            or self._closed is not None
            or (self._budget is not None and (need > FREE_BYTES or self._budget.held(self)))
        ):
            data = await self._read(need)
            step = engine.feed(data, time.time(), time.perf_counter(), committed)
        else:
            step = await self._feed_from_socket(engine, socket, committed)
        self.messages_received = engine.messages
        self.bytes_received = engine.bytes_read
        return step

    async def _feed_from_socket(
        self, engine: _core.TrackerEngine, socket: trio.socket.SocketType, committed: int
    ) -> Any:
        """:meth:`feed_engine`'s common case: the engine reads the socket
        into its own buffer (``TrackerEngine.feed_from``), so a read makes
        no bytes object and no copy. It only reads what is there; trio
        waits for more."""
        self._readable = False
        if self.idle_since is not None:  # idle_wait's wait for the socket returned
            self.idle_since = self.pinged_at = None
        else:
            # Every read yields once, as trio's own recv does: a peer that
            # always has more to send must not keep the loop to itself.
            await trio.lowlevel.checkpoint()
        while self._closed is None:
            try:
                step = engine.feed_from(self._fileno, time.time(), time.perf_counter(), committed)
            except (OSError, EOFError):
                break
            if step is not None:
                return step
            self.idle_since = trio.current_time()
            try:
                await trio.lowlevel.wait_readable(socket)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
            finally:
                self.idle_since = self.pinged_at = None
        self._finish(ConnectionClosed(1006, "connection lost"))
        raise self._closed  # type: ignore[misc]

    def idle_wait(self, engine: _core.TrackerEngine) -> Awaitable[None] | None:
        """The wait for the peer's next bytes, for a caller that then feeds
        ``engine`` (:meth:`feed_engine`) to await itself; None when the read
        would not wait for the socket: bytes are there (checked here once
        for the read), what the handshake read is pending, the connection
        is over, or the in-flight budget applies (see :meth:`_read`, which
        then does all that).

        A plain method that returns trio's wait: an idle connection's task,
        most of a server's, then holds neither this frame nor those of the
        read (docs/benchmarks.md, idle connections). The wait raises
        ``trio.ClosedResourceError`` when the connection is closed under
        it; the caller then reads, which raises :class:`ConnectionClosed`."""
        socket = self._socket
        if socket is None or self._pending or self._closed is not None:
            return None
        if socket.is_readable():  # a busy connection: the common case
            self._readable = True
            return None
        need = engine.buffered_bytes + engine.frame_remaining
        if self.close_pending or (
            self._budget is not None and (need > FREE_BYTES or self._budget.held(self))
        ):
            return None
        self._readable = True  # once the wait returns
        self.idle_since = trio.current_time()
        return trio.lowlevel.wait_readable(socket)  # noqa: ASYNC105  # the caller awaits it

    async def answer_close(self, code: int | None, reason: str) -> NoReturn:
        """The peer's close frame (reported by a tracker engine), once its
        messages were answered: echo it and raise :class:`ConnectionClosed`."""
        await self._answer_close(code, reason)
        raise self._closed  # type: ignore[misc]

    async def fail(self, code: int, reason: str) -> NoReturn:
        """The peer broke RFC 6455 (reported by a tracker engine): close
        with ``code`` and raise :class:`ConnectionClosed`."""
        await self._fail(code, reason)
        raise self._closed  # type: ignore[misc]

    async def _answer_held_close(self) -> None:
        """Answer the peer's close frame if one was read (see "Order"), and
        raise the connection's :class:`ConnectionClosed`."""
        if self._close_received is not None:
            received, reason = self._close_received
            self._close_received = None
            await self._answer_close(received, reason)
        if self._closed is not None:
            raise self._closed

    async def _read(self, need: int) -> bytes:
        """The next bytes from the peer (what the handshake read past the
        request first). ``need`` is what the codec holds for a message in
        progress: its share of the in-flight budget is taken before reading,
        waiting (unread) while the budget is busy. Raises the connection's
        :class:`ConnectionClosed` once it is over or the peer is gone."""
        if self._closed is not None:
            raise self._closed
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            if self._budget is not None and (need > FREE_BYTES or self._budget.held(self)):
                await self._budget.hold(self, need if need > FREE_BYTES else 0)
            self.idle_since = trio.current_time()
            readable, self._readable = self._readable, False
            try:
                socket = self._socket
                if socket is not None and not readable and not socket.is_readable():
                    # Wait with no read in progress: a connection idle for
                    # hours then keeps none of the frames of trio's read path
                    # alive meanwhile (docs/benchmarks.md, idle connections).
                    await trio.lowlevel.wait_readable(socket)
                data = bytes(await self._stream.receive_some(READ_SIZE))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self.idle_since = self.pinged_at = None
            if not data:
                self._finish(ConnectionClosed(1006, "connection lost"))
                raise self._closed  # type: ignore[misc]
        self.bytes_received += len(data)
        return data

    def encode_message(
        self, data: bytes | str, *, binary: bool = False, compress: bool = True
    ) -> bytes:
        """One text (or binary) message as a ready-to-send frame.

        It is compressed when permessage-deflate was agreed, the server can
        compress for this client (see ``DeflateParams.server_compresses``),
        ``compress`` is true and the payload has at least
        ``MIN_COMPRESS_BYTES``; otherwise it is a plain frame. Text must be
        a ``str`` or UTF-8 ``bytes`` (ValueError otherwise)."""
        deflate = self.deflate
        if (
            compress
            and deflate is not None
            and deflate.server_compresses
            and len(data) >= MIN_COMPRESS_BYTES
        ):
            bits = deflate.server_max_window_bits
            if binary:
                return _core.encode_binary_deflated(_as_bytes(data), window_bits=bits)
            return _core.encode_text_deflated(data, window_bits=bits)
        if binary:
            return _core.encode_binary(_as_bytes(data))
        return _core.encode_text(data)

    def write_now(self, frames: bytes) -> int:
        """Write what the socket takes right now, without waiting: the
        number of bytes written (0 if its buffer is full), or -1 if this
        cannot be done here (another task is sending, the connection is
        closing, the stream is not a plain socket, or the write failed --
        the caller then uses :meth:`send`, which reports the failure).

        This is the fan-out fast path: a viewer that keeps up is written to
        by the session's broadcaster directly, one syscall, instead of
        waking the viewer's task. A partial write keeps the rest, which the
        next :meth:`send` writes first; call ``send(b"")`` to flush it."""
        if self._close_sent or self._sending or self._fileno < 0 or self._tail:
            return -1
        try:
            written = os.write(self._fileno, frames)
        except BlockingIOError:
            return 0
        except OSError:
            return -1
        self.bytes_sent += written
        if written < len(frames):
            # The socket is mid-frame now: whatever is sent next, by any
            # task, goes after this rest (see _write).
            self._tail = frames[written:]
            self.bytes_sent -= len(self._tail)
        return written

    def ping_now(self) -> None:
        """Heartbeat: write a ping without waiting. What the socket does not
        take now stays queued (with any rest of a ``write_now``): it goes
        before the next frame sent, or with :meth:`flush_now`. While another
        task is sending, the ping would land mid-frame: that task writes it
        once its frames are out. None once a close frame is out.

        The ping is never dropped: the heartbeat starts its clock when it
        asks for one, so a ping skipped would get a live peer that sends
        nothing else (a viewer) dropped for not answering it."""
        if self._close_sent:
            return
        if self._sending:
            self._ping_due = True
            return
        self._write_nowait(self._ping_frame())

    def flush_now(self) -> None:
        """Write what is still queued (a ping the socket had no room for) as
        far as the socket takes it now. The heartbeat calls it while it
        waits for a pong: a quiet connection has no next frame to carry a
        queued ping out."""
        if self._tail and not self._sending:
            self._write_nowait(b"")

    async def abort(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): a close frame with
        ``code`` if the socket takes it without waiting, then the TCP
        connection is closed at once, without waiting for the peer's close
        frame. The task reading the connection gets
        :class:`ConnectionClosed` (``code``, ``local=True``)."""
        if not self._close_sent:
            self._close_sent = True
            if not self._sending:
                self._write_nowait(self._close_frame(code, reason))
            if self._on_close is not None:
                self._on_close(code, local=True)
        self._finish(ConnectionClosed(code, reason, local=True))
        self._fileno = -1
        with trio.CancelScope(shield=True):
            await self._stream.aclose()

    async def send(self, frames: bytes) -> None:
        """Write already encoded frames. Sends are serialised, so frames of
        different tasks never interleave. Raises :class:`ConnectionClosed`
        when the peer is gone."""
        async with self._lock():
            if self._close_sent:
                raise (
                    self._closed
                    or self._sent_close
                    or ConnectionClosed(1006, "close frame already sent", local=True)
                )
            await self._write(frames)
            if self._ping_due:  # asked for while this task was sending
                self._ping_due = False
                await self._write(self._ping_frame())

    async def send_soon(self, frames: bytes) -> None:
        """:meth:`send`, but without waiting when the socket takes all of
        ``frames`` at once (see :meth:`write_now`): a tracker's acks go out
        once per read, and the send lock and trio's scheduling cost more
        than the write. Otherwise (a full socket buffer, another task
        sending, a failure to report) it is :meth:`send`."""
        written = self.write_now(frames)
        if written == len(frames):
            return
        # Nothing written (-1 or 0): send it all; part of it: write_now
        # kept the rest, which send writes first.
        await self.send(frames if written <= 0 else b"")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake: send a close frame (once). The
        stream itself is closed by :meth:`aclose`."""
        async with self._lock():
            if self._close_sent:
                return
            self._close_sent = True
            self._sent_close = ConnectionClosed(code, reason, local=True)
            with contextlib.suppress(ConnectionClosed):
                await self._write(self._close_frame(code, reason))
        if self._on_close is not None:
            self._on_close(code, local=True)

    async def aclose(self) -> None:
        self._fileno = -1  # the number may be reused once the stream is closed
        if self._budget is not None:
            self._budget.release(self)
        if not self._close_sent:
            await self.close(1000)
        if self._closed is None:
            self._closed = ConnectionClosed(1000, "", local=True)
        with trio.CancelScope(shield=True):
            await self._stream.aclose()

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._budget is not None:
            self._budget.release(self)
        if isinstance(exc, ConnectionClosed) or exc is None:
            await self.aclose()
            return
        with trio.CancelScope(shield=True):
            with trio.move_on_after(1):
                await self.close(1011 if not isinstance(exc, trio.Cancelled) else 1001)
            await self._stream.aclose()

    # -- internals ------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        if self._tail:  # the rest of a frame write_now could not finish
            data, self._tail = self._tail + data, b""
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._finish(ConnectionClosed(1006, "connection lost"))
            raise self._closed from None  # type: ignore[misc]
        self.bytes_sent += len(data)

    def _write_nowait(self, frame: bytes) -> None:
        """Write the unwritten rest of an earlier frame and ``frame`` as far
        as the socket takes them now; keep what it does not (see ``_write``).
        For the caller: nobody else is sending."""
        data = self._tail + frame
        written = 0
        if self._fileno >= 0:
            try:
                written = os.write(self._fileno, data)
            except BlockingIOError:
                pass
            except OSError:
                return  # the peer is gone; the reading task will see it
        self._tail = data[written:]
        self.bytes_sent += written

    def _close_frame(self, code: int | None, reason: str = "") -> bytes:
        """A close frame (``code=None``: empty body)."""
        return _core.encode_close(code, reason)

    def _ping_frame(self) -> bytes:
        return PING

    async def _answer_close(self, received: int | None, reason: str) -> None:
        """The peer's close frame arrived (``received``: its code, None when
        it had no body): echo it unless we closed first, and finish."""
        code = received if received is not None else 1005
        if self._on_close is not None:
            self._on_close(code, local=False)
        async with self._lock():
            if not self._close_sent:
                self._close_sent = True
                # Echo the status code, as RFC 6455 section 5.5.1 asks.
                with contextlib.suppress(ConnectionClosed):
                    await self._write(self._close_frame(received))
        self._finish(ConnectionClosed(code, reason))

    async def _fail(self, code: int, reason: str) -> None:
        await self.close(code, reason)
        self._finish(ConnectionClosed(code, reason, local=True))

    def _finish(self, closed: ConnectionClosed) -> None:
        if self._closed is None:
            self._closed = closed
        if self._budget is not None:
            self._budget.release(self)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data
