"""A discard sink: the cheapest server the load generator can talk to.

It accepts WebSocket upgrades on ``/ws``, decodes the client's frames with
the Rust frame decoder, and answers every data message with one fixed,
pre-encoded ack frame; it parses no JSON, keeps nothing and stores nothing.
The suite drives it with the ingest generator first: the rate reached is the
generator's ceiling on this machine (strictly, the ceiling of generator and
sink together), reported next to every result.

This Python sink caps out below the Rust generator, so there is a second
one built into the binary (``loadgen sink``, ``benches/loadgen/src/sink.rs``):
it reads frame headers only, skips payloads, and sends the same ack bytes.
:func:`serving_sink` starts either (``kind``); the suite calibrates the
Rust generator against the Rust sink and the Python one against this one.

    python benches/sink.py --port 9000      # serves until killed

Resource handling: one trio task per connection, closed when the client
goes away; the process runs until it is terminated (:func:`serving_sink`
does that).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import trio

from replaywire import _core
from replaywire.ws import accept_key

ACK = _core.encode_text(b'{"type":"ack","data":{"sessionId":"sink","seq":0}}')


async def serve_one(stream: trio.SocketStream) -> None:
    async with stream:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            head += chunk
        key = b""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: %b\r\n\r\n" % accept_key(key)
        )
        decoder = _core.FrameDecoder(max_message_bytes=64 << 20)
        data = head.split(b"\r\n\r\n", 1)[1]
        try:
            while True:
                if data:
                    events = decoder.feed(data)
                    acks = sum(isinstance(e, _core.WsMessage) for e in events)
                    if acks:
                        await stream.send_all(ACK * acks)
                    if any(isinstance(e, _core.WsClose) for e in events):
                        return
                data = await stream.receive_some(262144)
                if not data:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, _core.WebSocketError):
            return


async def serve(port: int) -> None:
    await trio.serve_tcp(serve_one, port, host="127.0.0.1")


SINKS = ("python", "rust")
# The Rust sink stops by itself after this long if nothing terminates it.
RUST_SINK_MAX_SECONDS = 900


@contextlib.contextmanager
def serving_sink(pin: bool = False, kind: str = "python") -> Iterator[tuple[int, int]]:
    """A sink process on a free port, this one (``kind="python"``) or the
    Rust one (``"rust"``): yields (port, pid), kills it after. With
    ``pin``, pinned like the server in ingest_load.serving."""
    # The parent only: the child runs as a script.
    from benches.ingest_load import wait_listening

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    if kind == "rust":
        from benches import loadgen

        command = [str(loadgen.binary()), "sink", "--port", str(port)]
        command += ["--max-seconds", str(RUST_SINK_MAX_SECONDS)]
    elif kind == "python":
        command = [sys.executable, __file__, "--port", str(port)]
    else:
        raise ValueError(f"unknown sink {kind!r}: expected one of {', '.join(SINKS)}")
    proc = subprocess.Popen(command)
    cpus = sorted(os.sched_getaffinity(0))
    pin = pin and len(cpus) >= 2
    if pin:
        os.sched_setaffinity(proc.pid, {cpus[-1]})
        os.sched_setaffinity(0, set(cpus[:-1]))
    try:
        wait_listening(port, proc, f"{kind} sink")
        yield port, proc.pid
    finally:
        if pin:
            os.sched_setaffinity(0, cpus)
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, parser.parse_args().port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
