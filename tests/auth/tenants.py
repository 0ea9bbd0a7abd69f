"""Two tenants with every kind of credential, and clients that use them,
for the auth tests. Tokens are made here the way an operator makes them
(``replaywire.auth.tokens``); the server only ever sees their hashes."""

from __future__ import annotations

import json
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from replaywire import Server
from replaywire.auth.tokens import issue_jwt, token_hash

SECRET = "test-secret-0123456789abcdef0123456789abcdef"
ACME_READ = "rwt_acme-read-token"
ACME_ADMIN = "rwt_acme-admin-token"
BETA_READ = "rwt_beta-read-token"
TENANTS: dict[str, Any] = {
    "acme": {
        "write_keys": ["pk_acme_2024", "pk_acme_2025"],  # rotation: both valid
        "allowed_origins": ["https://shop.acme.test", "https://*.acme.test"],
        "api_token_hashes": [token_hash(ACME_READ)],
        "admin_token_hashes": [token_hash(ACME_ADMIN)],
    },
    "beta": {
        "write_keys": ["pk_beta"],
        "api_token_hashes": [token_hash(BETA_READ)],
    },
}
KEYS = {"acme": "pk_acme_2025", "beta": "pk_beta"}


def jwt_for(tenant: str, scope: str = "read", ttl: float = 300, secret: str = SECRET) -> str:
    return issue_jwt(secret, tenant, scope, ttl)


async def start(start_server: Any, **overrides: Any) -> Server:
    server: Server = await start_server(tenants=TENANTS, jwt_secret=SECRET, **overrides)
    return server


def tracker_url(server: Server, tenant: str) -> str:
    return f"ws://127.0.0.1:{server.port}/ws?type=tracker&key={KEYS[tenant]}"


def open_tracker(server: Server, tenant: str) -> Any:
    return open_websocket_url(tracker_url(server, tenant))


def open_viewer(server: Server, token: str) -> Any:
    return open_websocket_url(
        f"ws://127.0.0.1:{server.port}/ws?type=viewer",
        extra_headers=[(b"authorization", f"Bearer {token}".encode())],
    )


async def upgrade(
    server: Server, target: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """Status and JSON body (empty for 101) of a raw upgrade request."""
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    async with stream:
        await stream.send_all(request.encode())
        data = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                data += chunk
            status = int(data.split(b" ", 2)[1])
            if status == 101:
                return status, {}
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            while len(body) < length:
                body += await stream.receive_some(65536)
    return status, json.loads(body)


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        return json.loads(await ws.get_message())  # type: ignore[no-any-return]
