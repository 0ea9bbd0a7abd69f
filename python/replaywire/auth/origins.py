"""Origins and HTTP hygiene: which pages may open a tenant's tracker socket,
CORS for the REST API, and the security headers of every HTTP answer.

Tracker sockets: a browser always sends ``Origin`` on a WebSocket upgrade
and a page cannot forge it, so a tenant's ``allowed_origins`` stop other
sites from recording into the tenant with its (public) write key. A client
sending no ``Origin`` is not a browser and could send any value, so it is
let through: the check protects browsers' users, it does not authenticate.

CORS: REST credentials are bearer tokens, never cookies, so CORS here only
decides which pages' scripts may read answers. An origin allowed for any
tenant is allowed; no ``Access-Control-Allow-Credentials`` is sent.
"""

from __future__ import annotations

from collections.abc import Iterable

# Methods and headers a cross-origin script may use on the REST API.
CORS_METHODS = b"GET, HEAD, DELETE, OPTIONS"
CORS_HEADERS = b"Authorization, Content-Type, X-Request-ID"
CORS_EXPOSE = b"X-Request-ID, Retry-After, Content-Encoding"
CORS_MAX_AGE = b"600"

# Every answer: no MIME sniffing, no Referer sent onward, and (API) never
# framed, nothing loadable from a JSON answer opened as a page.
API_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
# The viewer page: the same, except that it may be framed by its own origin
# and its CSP says only that. rrweb's replay iframe is a same-origin
# about:blank document that inherits the page's CSP, so anything stricter
# (default-src) would stop the replay rendering the recorded page's styles
# and images.
PAGE_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", b"frame-ancestors 'self'"),
)


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``, as a browser sends it)
    matches one of ``allowed``: equal (case-insensitive), ``*``, or
    ``scheme://*.example.com`` for any subdomain of example.com (not
    example.com itself)."""
    origin = origin.lower()
    for entry in allowed:
        entry = entry.lower()
        if entry == "*" or entry == origin:
            return True
        scheme, sep, host = entry.partition("://*.")
        if sep and origin.startswith(scheme + "://") and origin.endswith("." + host):
            return True
    return False


def security_headers(
    path: str, present: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The security headers an answer to ``path`` lacks."""
    have = {name for name, _ in present}
    chosen = PAGE_SECURITY_HEADERS if _is_page(path) else API_SECURITY_HEADERS
    return [(name, value) for name, value in chosen if name not in have]


def cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    """The headers letting ``origin``'s scripts read an answer (already
    checked as allowed)."""
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", CORS_EXPOSE),
        (b"vary", b"Origin"),
    ]


def preflight_headers(origin: str) -> list[tuple[bytes, bytes]]:
    """The answer to an allowed ``OPTIONS`` preflight."""
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", CORS_METHODS),
        (b"access-control-allow-headers", CORS_HEADERS),
        (b"access-control-max-age", CORS_MAX_AGE),
        (b"vary", b"Origin"),
    ]


def _is_page(path: str) -> bool:
    return path == "/viewer" or path.startswith("/viewer/")
