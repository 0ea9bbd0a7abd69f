"""permessage-deflate end to end, with clients we did not write: websockets
(offers the extension by default), wsproto's own PerMessageDeflate, and
trio-websocket (offers nothing). Trackers stream compressed batches to a
real server and get every ack; what the server compresses is checked on an
echo endpoint built from the real HTTP listener and WebSocket object, since
the tracker and viewer protocols send short control messages plain."""

from __future__ import annotations

import json
import zlib
from functools import partial

import pytest
import trio
import wsproto
import wsproto.events as wse
from trio_websocket import open_websocket_url
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.sync.client import connect
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate

from core.test_ws_codec import parse_frames
from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import events_of, http, recv_json, start_session, ws_url
from e2e.rawws import client_frame, handshake
from replaywire import Config, _core
from replaywire.auth import Auth
from replaywire.http.server import HttpDeps, handle_connection
from replaywire.limits import Limiter
from replaywire.observability.metrics import Metrics
from replaywire.ws import ConnectionClosed, InflightBudget, WebSocket
from replaywire.ws.extensions import MIN_COMPRESS_BYTES
from rrweb import batch_message, session_events, start_message

TAIL = b"\x00\x00\xff\xff"


def big_batches(session_id: str, count: int, per_batch: int = 200) -> tuple[list[bytes], list[str]]:
    """rrweb-like events and the events_batch messages carrying them (tens of
    KB each, repetitive: what trackers send and what compresses well)."""
    events = list(session_events(count * per_batch, seed=21))
    messages = [
        batch_message(session_id, seq, events[seq * per_batch : (seq + 1) * per_batch]).decode()
        for seq in range(count)
    ]
    return events, messages


async def stored_events(server, session_id: str) -> list[bytes]:
    status, _, body = await http(server, f"/sessions/{session_id}/events?limit=10000")
    assert status == 200, body
    return events_of(body)


# --- trackers on the real server ------------------------------------------------------


async def test_websockets_tracker_streams_compressed_batches(server) -> None:
    events, messages = big_batches("pmd", 12)
    assert min(len(m) for m in messages) > 40_000

    def run_client() -> tuple[str | None, list, list[dict]]:
        with connect(ws_url(server), max_size=None) as ws:
            header = ws.response.headers.get("Sec-WebSocket-Extensions")
            extensions = list(ws.protocol.extensions)
            ws.send(start_message("pmd"))
            replies = [json.loads(ws.recv(timeout=10))]
            for message in messages:
                ws.send(message)  # compressed by the client
            replies += [json.loads(ws.recv(timeout=10)) for _ in messages]
        return header, extensions, replies

    header, extensions, replies = await trio.to_thread.run_sync(run_client)
    assert header == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " client_max_window_bits=15"
    )
    [extension] = extensions
    assert isinstance(extension, PerMessageDeflate)
    assert replies[0]["type"] == "session_started"
    assert [r["data"]["seq"] for r in replies[1:]] == list(range(len(messages)))
    assert await stored_events(server, "pmd") == events


async def test_client_offering_nothing_gets_plain_websocket(server) -> None:
    def run_client() -> tuple[str | None, list, dict]:
        with connect(ws_url(server), compression=None) as ws:
            ws.send(start_message("plain"))
            return (
                ws.response.headers.get("Sec-WebSocket-Extensions"),
                list(ws.protocol.extensions),
                json.loads(ws.recv(timeout=10)),
            )

    header, extensions, reply = await trio.to_thread.run_sync(run_client)
    assert (header, extensions) == (None, [])
    assert reply["type"] == "session_started"


async def test_trio_websocket_offers_nothing_and_still_works(server) -> None:
    events, messages = big_batches("trio-ws", 3)
    async with open_websocket_url(ws_url(server)) as ws:
        assert b"sec-websocket-extensions" not in dict(ws.handshake_headers)
        await start_session(ws, "trio-ws")
        for message in messages:
            await ws.send_message(message)
        assert [(await recv_json(ws))["data"]["seq"] for _ in messages] == [0, 1, 2]
    assert await stored_events(server, "trio-ws") == events


async def test_negotiation_can_be_turned_off(start_server) -> None:
    server = await start_server(ws_deflate=False)

    def run_client() -> tuple[str | None, dict]:
        with connect(ws_url(server)) as ws:  # offers permessage-deflate
            ws.send(start_message("off"))
            return ws.response.headers.get("Sec-WebSocket-Extensions"), json.loads(ws.recv(10))

    header, reply = await trio.to_thread.run_sync(run_client)
    assert header is None
    assert reply["type"] == "session_started"


async def test_configured_client_window_bounds_the_client(start_server) -> None:
    server = await start_server(ws_deflate_client_window_bits=10)
    events, messages = big_batches("win10", 4)

    def run_client() -> tuple[str | None, list[int]]:
        with connect(ws_url(server)) as ws:
            ws.send(start_message("win10"))
            ws.recv(timeout=10)
            for message in messages:
                ws.send(message)
            seqs = [json.loads(ws.recv(timeout=10))["data"]["seq"] for _ in messages]
            return ws.response.headers.get("Sec-WebSocket-Extensions"), seqs

    header, seqs = await trio.to_thread.run_sync(run_client)
    assert header == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " client_max_window_bits=10"
    )
    assert seqs == [0, 1, 2, 3]
    assert await stored_events(server, "win10") == events


# --- wsproto's own permessage-deflate ---------------------------------------------------


class WsprotoClient:
    """A WebSocket client made of wsproto (with its PerMessageDeflate) over
    a trio stream: a second, independent implementation of RFC 7692."""

    def __init__(self, stream: trio.SocketStream, conn: wsproto.WSConnection) -> None:
        self.stream = stream
        self.conn = conn
        self.accepted: wse.AcceptConnection | None = None
        self._pending: list[wse.Event] = []
        self._parts: list[str | bytes] = []

    @classmethod
    async def connect(cls, port: int, target: str, extension: WsprotoDeflate) -> WsprotoClient:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = cls(stream, wsproto.WSConnection(wsproto.ConnectionType.CLIENT))
        try:
            await client._send(wse.Request(host="127.0.0.1", target=target, extensions=[extension]))
            event = await client._next()
            assert isinstance(event, wse.AcceptConnection), event
        except BaseException:
            await stream.aclose()
            raise
        client.accepted = event
        return client

    async def send(self, message: str | bytes) -> None:
        await self._send(_message(message))

    async def receive(self) -> str | bytes:
        while True:
            event = await self._next()
            if isinstance(event, wse.TextMessage | wse.BytesMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    parts, self._parts = self._parts, []
                    return "".join(parts) if isinstance(parts[0], str) else b"".join(parts)  # type: ignore[arg-type]
            elif isinstance(event, wse.CloseConnection):
                raise AssertionError(f"closed: {event.code} {event.reason}")

    async def __aenter__(self) -> WsprotoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with trio.CancelScope(shield=True):
            if self.conn.state is wsproto.connection.ConnectionState.OPEN:
                await self._send(wse.CloseConnection(code=1000))
            await self.stream.aclose()

    async def _send(self, event: wse.Event) -> None:
        await self.stream.send_all(self.conn.send(event))

    async def _next(self) -> wse.Event:
        with trio.fail_after(10):
            while not self._pending:
                data = await self.stream.receive_some(65536)
                self.conn.receive_data(data or None)
                self._pending.extend(self.conn.events())
        return self._pending.pop(0)


def _message(message: str | bytes) -> wse.Event:
    if isinstance(message, str):
        return wse.TextMessage(data=message)
    return wse.BytesMessage(data=message)


async def test_wsproto_tracker_streams_compressed_batches(server) -> None:
    events, messages = big_batches("wsproto", 4)
    extension = WsprotoDeflate()
    async with await WsprotoClient.connect(server.port, "/ws?type=tracker", extension) as client:
        assert client.accepted is not None
        assert extension.enabled()  # wsproto accepted our answer to its offer
        assert extension.server_no_context_takeover
        assert extension.client_no_context_takeover  # required though not offered
        await client.send(start_message("wsproto"))
        assert json.loads(await client.receive())["type"] == "session_started"
        for message in messages:
            await client.send(message)
        acks = [json.loads(await client.receive()) for _ in messages]
    assert [a["data"]["seq"] for a in acks] == [0, 1, 2, 3]
    assert await stored_events(server, "wsproto") == events


# --- what the server compresses: an echo endpoint -----------------------------------------


class EchoServer:
    """Just enough of a server for the real ``handle_connection`` (the
    :class:`HttpDeps` it takes): every message a client sends comes back
    through ``WebSocket.encode_message`` and ``send``, so what the server
    compresses reaches real clients."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.inflight = InflightBudget(config.max_inflight_bytes)
        self.limiter = Limiter(config, self.metrics, shared=False)
        self.auth = Auth(config)  # development mode: no credentials
        self.port = 0
        self.deps = HttpDeps(
            config=config,
            auth=self.auth,
            limiter=self.limiter,
            metrics=self.metrics,
            inflight=self.inflight,
            routes=None,  # type: ignore[arg-type]  # /ws only: no REST route is asked
            draining=lambda: False,
            count_close=self.count_close,
            serve_websocket=self.run_websocket,
            warn=lambda event, **fields: None,
        )

    def count_close(self, code: int, *, local: bool) -> None:
        pass

    async def run_websocket(self, ws: WebSocket, kind: str, who: object, codec: str) -> None:
        async with ws:
            try:
                while True:
                    for message in await ws.receive():
                        assert isinstance(message, _core.WsMessage)
                        await ws.send(ws.encode_message(message.data, binary=not message.is_text))
            except ConnectionClosed:
                pass


@pytest.fixture
async def echo(nursery: trio.Nursery) -> EchoServer:
    """An echo endpoint, listening until the test's nursery is cancelled."""
    server = EchoServer(Config(host="127.0.0.1", port=0))
    listeners = await nursery.start(
        partial(trio.serve_tcp, partial(handle_connection, deps=server.deps), 0, host="127.0.0.1")
    )
    server.port = listeners[0].socket.getsockname()[1]
    return server


def echo_payloads() -> list[str | bytes]:
    batch = batch_message("s", 0, list(session_events(400, seed=5)))
    return [
        "short",
        "x" * MIN_COMPRESS_BYTES,
        batch.decode(),
        batch * 3,
        bytes(range(256)) * 400,
        "κόσμε " * 5000,
    ]


@pytest.mark.parametrize("server_max_window_bits", [None, 9, 10, 15])
async def test_websockets_client_reads_what_the_server_compresses(
    echo: EchoServer, server_max_window_bits: int | None
) -> None:
    factory = ClientPerMessageDeflateFactory(
        server_max_window_bits=server_max_window_bits, client_max_window_bits=True
    )
    payloads = echo_payloads()

    def run_client() -> tuple[str | None, list[str | bytes]]:
        url = f"ws://127.0.0.1:{echo.port}/ws?type=viewer"
        with connect(url, extensions=[factory], compression=None, max_size=None) as ws:
            echoed = []
            for payload in payloads:
                ws.send(payload)
                echoed.append(ws.recv(timeout=10))
            return ws.response.headers.get("Sec-WebSocket-Extensions"), echoed

    header, echoed = await trio.to_thread.run_sync(run_client)
    assert echoed == payloads
    expected = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    if server_max_window_bits is not None:
        expected += f"; server_max_window_bits={server_max_window_bits}"
    assert header == expected + "; client_max_window_bits=15"


async def test_wsproto_client_reads_what_the_server_compresses(echo: EchoServer) -> None:
    extension = WsprotoDeflate(server_max_window_bits=11)
    async with await WsprotoClient.connect(echo.port, "/ws?type=viewer", extension) as client:
        assert extension.server_max_window_bits == 11
        for payload in echo_payloads():
            await client.send(payload)
            assert await client.receive() == payload


@pytest.mark.parametrize(("offer", "bits"), [(b"", 15), (b"; server_max_window_bits=10", 10)])
async def test_server_frames_are_compressed_when_long(
    echo: EchoServer, offer: bytes, bits: int
) -> None:
    """Seen on the wire: long messages come back with RSV1 and inflate with
    the agreed window and a fresh inflater each; short ones come back plain."""
    stream, head = await handshake(
        echo.port, extra=b"Sec-WebSocket-Extensions: permessage-deflate%b\r\n" % offer
    )
    assert (
        b"\r\nsec-websocket-extensions: permessage-deflate; server_no_context_takeover;"
        b" client_no_context_takeover" in head
    )
    payloads = [b"short", batch_message("s", 0, list(session_events(100, seed=1))), b"y" * 5000]
    # The raw bytes are kept for the reference parser; our own decoder only
    # says when every echo is in.
    decoder = _core.FrameDecoder(require_mask=False, deflate_window_bits=bits)
    received = 0
    wire = b""
    async with stream:
        for payload in payloads:
            await stream.send_all(client_frame(_core.OP_TEXT, payload))
        with trio.fail_after(10):
            while received < len(payloads):
                data = await stream.receive_some(65536)
                assert data
                wire += data
                received += len(decoder.feed(data))
    frames = parse_frames(wire)
    assert [f.rsv for f in frames] == [0, 0b100, 0b100]
    assert frames[0].payload == payloads[0]
    for frame, payload in zip(frames[1:], payloads[1:], strict=True):
        assert len(frame.payload) * 3 < len(payload)
        assert zlib.decompressobj(wbits=-bits).decompress(frame.payload + TAIL) == payload
