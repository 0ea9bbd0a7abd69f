"""Origins and HTTP hygiene: tracker origins checked before the upgrade,
CORS for the REST API, and security headers on every answer."""

from __future__ import annotations

from typing import Any

import pytest

from auth.tenants import ACME_READ, KEYS, start, upgrade
from e2e.clients import http

ACME = f"/ws?type=tracker&key={KEYS['acme']}"
BETA = f"/ws?type=tracker&key={KEYS['beta']}"


@pytest.mark.parametrize(
    ("target", "origin", "status"),
    [
        (ACME, "https://shop.acme.test", 101),
        (ACME, "HTTPS://SHOP.ACME.TEST", 101),  # origins compare case-insensitively
        (ACME, "https://eu.acme.test", 101),  # https://*.acme.test
        (ACME, None, 101),  # not a browser: nothing to protect (the key is public)
        (ACME, "https://evil.test", 403),
        (ACME, "http://shop.acme.test", 403),  # another scheme is another origin
        (ACME, "https://shop.acme.test:8443", 403),
        (ACME, "https://acme.test", 403),  # the wildcard is for subdomains only
        (ACME, "https://evilacme.test", 403),
        (ACME, "null", 403),  # sandboxed iframes, file:// pages
        (BETA, "https://evil.test", 101),  # beta lists no origins: any page
    ],
)
async def test_tracker_origins(
    start_server: Any, target: str, origin: str | None, status: int
) -> None:
    server = await start(start_server)
    answer, body = await upgrade(server, target, {"Origin": origin} if origin else {})
    assert answer == status, body
    if status == 403:
        assert body["error"]["code"] == "origin_not_allowed"


async def test_cors_preflight_and_answers(start_server: Any) -> None:
    server = await start(start_server)
    preflight = {
        "Origin": "https://shop.acme.test",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    status, head, body = await http(server, "/sessions/x", "OPTIONS", preflight)
    assert status == 204 and body == b""
    assert head["access-control-allow-origin"] == "https://shop.acme.test"
    assert "Authorization" in head["access-control-allow-headers"]
    assert "DELETE" in head["access-control-allow-methods"]
    assert head["vary"] == "Origin" and "access-control-allow-credentials" not in head
    status, head, _ = await http(
        server, "/sessions/x", "OPTIONS", {**preflight, "Origin": "https://evil.test"}
    )
    assert status == 403 and "access-control-allow-origin" not in head
    # Answers carry CORS headers for allowed origins only, errors included.
    auth = {"Authorization": f"Bearer {ACME_READ}"}
    for origin, allowed in (("https://eu.acme.test", True), ("https://evil.test", False)):
        for path in ("/sessions/active", "/sessions/missing"):
            status, head, _ = await http(server, path, headers={**auth, "Origin": origin})
            assert status in (200, 404)
            assert head.get("access-control-allow-origin") == (origin if allowed else None)


async def test_security_headers(start_server: Any) -> None:
    server = await start(start_server)
    for path in ("/health", "/sessions/active", "/openapi.json", "/nowhere", "/tracker.js"):
        _, head, _ = await http(server, path)
        assert head["x-content-type-options"] == "nosniff", path
        assert head["referrer-policy"] == "no-referrer"
        assert head["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in head["content-security-policy"]
    # The viewer page may be framed by its own origin, and its CSP says no
    # more than that: rrweb's replay iframe inherits it.
    _, _, page = await http(server, "/viewer")
    script = page.split(b'src="', 1)[1].split(b'"', 1)[0].decode()  # the hashed bundle
    for path in ("/viewer", script):
        status, head, _ = await http(server, path)
        assert status == 200, path
        assert head["x-frame-options"] == "SAMEORIGIN"
        assert head["content-security-policy"] == "frame-ancestors 'self'"
        assert head["referrer-policy"] == "no-referrer"
