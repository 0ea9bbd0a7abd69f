"""Credentials, end to end: write keys (with rotation) on the tracker
socket, tokens on the viewer socket and the REST API, and what each refusal
is answered with (docs/protocol.md, "Tenants and credentials"): 401 for a
missing or worthless credential, 403 for one lacking the scope."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from trio_websocket import open_websocket_url

from auth.tenants import (
    ACME_ADMIN,
    ACME_READ,
    SECRET,
    jwt_for,
    open_viewer,
    start,
    upgrade,
)
from e2e.clients import http, start_session
from replaywire import Server
from replaywire.auth.tokens import new_opaque_token

REFUSED_TOKENS = {
    "expired": (jwt_for("acme", ttl=-120), "token has expired"),
    "forged": (jwt_for("acme", secret="another-secret-0123456789abcdef0123"), "invalid token"),
    "unknown tenant": (jwt_for("gamma"), "names no tenant"),
    "alg none": (
        jwt.encode({"tenant": "acme", "scope": "admin", "exp": 2**40}, None, algorithm="none"),
        "invalid token",
    ),
    "no exp": (jwt.encode({"tenant": "acme", "scope": "read"}, SECRET), "invalid token"),
    "unknown opaque": (new_opaque_token()[0], "unknown token"),
    "a write key": ("pk_acme_2025", "unknown token"),
}


async def rest(server: Server, path: str, headers: dict[str, str], method: str = "GET") -> Any:
    status, head, body = await http(server, path, method, headers)
    return status, head, json.loads(body) if body else None


@pytest.mark.parametrize("case", sorted(REFUSED_TOKENS))
async def test_worthless_tokens_are_refused_with_401(start_server: Any, case: str) -> None:
    server = await start(start_server)
    token, message = REFUSED_TOKENS[case]
    for path in ("/sessions/active", "/sessions/x", "/sessions/x/events", "/stats"):
        status, head, body = await rest(server, path, {"Authorization": f"Bearer {token}"})
        assert (status, body["error"]["code"]) == (401, "invalid_token"), body
        assert message in body["error"]["message"]
        assert 'error="invalid_token"' in head["www-authenticate"]
    for target in (f"/ws?type=viewer&token={token}", "/ws?type=viewer"):
        status, body = await upgrade(server, target, {"Authorization": f"Bearer {token}"})
        assert (status, body["error"]["code"]) == (401, "invalid_token")


async def test_missing_credentials_are_refused_with_401(start_server: Any) -> None:
    server = await start(start_server)
    for path, method in (
        ("/sessions/active", "GET"),
        ("/sessions/x", "GET"),
        ("/sessions/x/events", "GET"),
        ("/stats", "GET"),
        ("/sessions/cleanup", "DELETE"),
        # REST never reads ?token=: URLs end up in logs.
        (f"/sessions/active?token={ACME_READ}", "GET"),
    ):
        status, head, body = await rest(server, path, {}, method)
        assert (status, body["error"]["code"]) == (401, "unauthorized"), path
        assert head["www-authenticate"] == 'Bearer realm="replaywire"'
    assert (await upgrade(server, "/ws?type=viewer"))[1]["error"]["code"] == "unauthorized"
    # Public routes stay public: probes, metrics, the spec and the assets.
    for path in ("/", "/health", "/health/live", "/health/ready", "/metrics", "/openapi.json"):
        assert (await http(server, path))[0] == 200, path


async def test_scopes(start_server: Any) -> None:
    server = await start(start_server)
    for token in (ACME_READ, jwt_for("acme"), jwt_for("acme", "write")):
        status, head, body = await rest(
            server, "/sessions/cleanup", {"Authorization": f"Bearer {token}"}, "DELETE"
        )
        assert (status, body["error"]["code"]) == (403, "insufficient_scope")
        assert 'scope="admin"' in head["www-authenticate"]
    # A JWT with a scope that is not read may not read either.
    status, _, body = await rest(
        server, "/sessions/x", {"Authorization": f"Bearer {jwt_for('acme', 'write')}"}
    )
    assert (status, body["error"]["code"]) == (403, "insufficient_scope")
    status, _ = await upgrade(server, f"/ws?type=viewer&token={jwt_for('acme', 'write')}")
    assert status == 403
    for token in (ACME_ADMIN, jwt_for("acme", "admin"), jwt_for("acme", "read admin")):
        auth = {"Authorization": f"Bearer {token}"}
        status, _, body = await rest(server, "/sessions/cleanup", auth, "DELETE")
        assert status == 200 and body == {"ended": [], "count": 0}
        status, _, stats = await rest(server, "/stats", auth)
        assert status == 200 and "storage" in stats and "buffers" in stats  # the details


async def test_viewer_token_in_header_or_query(start_server: Any) -> None:
    server = await start(start_server)
    for token in (ACME_READ, jwt_for("acme")):
        async with open_viewer(server, token):
            pass
        async with open_websocket_url(f"ws://127.0.0.1:{server.port}/ws?type=viewer&token={token}"):
            pass


async def test_write_keys_rotate_and_bind_the_tenant(start_server: Any) -> None:
    server = await start(start_server)
    url = f"ws://127.0.0.1:{server.port}/ws?type=tracker&key="
    async with open_websocket_url(url + "pk_acme_2024") as ws:
        await start_session(ws, "rotating")
        await ws.send_message(
            json.dumps(
                {
                    "type": "events_batch",
                    "data": {"sessionId": "rotating", "seq": 0, "events": []},
                }
            )
        )
        assert json.loads(await ws.get_message())["type"] == "ack"
    # The new key reaches the same tenant: the session resumes after seq 0.
    async with open_websocket_url(url + "pk_acme_2025") as ws:
        assert (await start_session(ws, "rotating"))["nextSeq"] == 1
    for target, code in (
        ("/ws?type=tracker", "invalid_key"),
        ("/ws?type=tracker&key=", "invalid_key"),
        ("/ws?type=tracker&key=pk_acme_2023", "invalid_key"),
        (f"/ws?type=tracker&key={ACME_READ}", "invalid_key"),  # a token is not a key
    ):
        status, body = await upgrade(server, target)
        assert (status, body["error"]["code"]) == (401, code), target
