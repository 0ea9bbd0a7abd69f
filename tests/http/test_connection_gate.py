"""The connection gate is the first frame of every connection's task: a
bug that escapes the handler goes to its ``on_crash`` (the server logs and
counts it) and ends that connection only, with its places given back."""

from __future__ import annotations

import socket

import pytest
import trio

from replaywire import Config
from replaywire.http.listener import ConnectionGate
from replaywire.limits import Limiter
from replaywire.observability.metrics import Metrics


def _gate(on_crash: object = None) -> ConnectionGate:
    config = Config(host="127.0.0.1", port=0)
    metrics = Metrics()
    return ConnectionGate(
        0,
        Limiter(config, metrics, shared=False),
        metrics,
        on_crash=on_crash,  # type: ignore[arg-type]
    )


def _stream() -> trio.SocketStream:
    """One end of a socket pair whose other end is closed (the handler
    never reads): the caller closes it, as trio's listener does."""
    a, b = socket.socketpair()
    b.close()
    return trio.SocketStream(trio.socket.from_stdlib_socket(a))


async def _handler(stream: trio.SocketStream, client: str) -> None:
    raise RuntimeError("a bug")


async def test_a_handlers_crash_goes_to_on_crash() -> None:
    crashes: list[Exception] = []
    gate = _gate(crashes.append)
    async with _stream() as stream:
        await gate.serve(stream, _handler)
    assert [str(exc) for exc in crashes] == ["a bug"]
    assert gate.open == 0


async def test_without_on_crash_a_crash_propagates() -> None:
    gate = _gate()
    async with _stream() as stream:
        with pytest.raises(RuntimeError, match="a bug"):
            await gate.serve(stream, _handler)
    assert gate.open == 0
