"""Who is asking: the one place that turns a request's credentials into a
:class:`Principal` (a tenant and what it may do), or refuses it.

=====================  ==========================================  ==========================
who                    credential                                  refused with
=====================  ==========================================  ==========================
tracker socket         ``?key=`` write key (+ ``Origin`` check)    401 ``invalid_key``,
                                                                   403 ``origin_not_allowed``
viewer socket          ``Authorization: Bearer`` or ``?token=``    401 ``unauthorized`` /
                                                                   ``invalid_token``,
                                                                   403 ``insufficient_scope``
REST API               ``Authorization: Bearer`` only              the same
=====================  ==========================================  ==========================

Tokens are refused in REST URLs: URLs end up in proxy logs and browser
history; a WebSocket is the exception because browsers cannot set its
headers.

**Development mode.** With no tenant configured, everything is the
``default`` tenant with every scope and no credential is asked for. The
configuration refuses that mode on a non-loopback ``HOST`` unless
``DEV_MODE_ANY_HOST`` is set (see :mod:`replaywire.config`), and the server
logs it loudly at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import HttpError
from .origins import origin_allowed
from .tenants import DEFAULT_TENANT, SEPARATOR, Tenant, ed25519_public_key, session_key
from .tokens import Grant, TokenError, TokenVerifier, find_digest, token_hash

if TYPE_CHECKING:
    from ..config import Config

WRITE, READ, ADMIN = "write", "read", "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """A tenant, and the scopes its credential grants (``write`` for a
    tracker key; ``read`` and/or ``admin`` for a token)."""

    tenant: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or (scope == READ and ADMIN in self.scopes)

    def key(self, session_id: str) -> str:
        """The server's key of this tenant's session ``session_id``."""
        return session_key(self.tenant, session_id)

    def owns(self, key: str) -> bool:
        return key.startswith(self.tenant + SEPARATOR)


DEV_PRINCIPAL = Principal(DEFAULT_TENANT, frozenset({WRITE, READ, ADMIN}))


class Auth:
    """The configured tenants' credentials, checked per connection or
    request. Built once from the :class:`~replaywire.config.Config`."""

    def __init__(self, config: Config) -> None:
        tenants: tuple[Tenant, ...] = config.tenants
        self.dev_mode = not tenants
        self.tenants = {t.name: t for t in tenants}
        self._write_keys = [
            (bytes.fromhex(token_hash(key)), t.name) for t in tenants for key in t.write_keys
        ]
        hashes: dict[str, Grant] = {}
        for t in tenants:
            for digest in t.api_token_hashes:
                hashes[digest] = Grant(t.name, frozenset({READ}))
            for digest in t.admin_token_hashes:
                hashes[digest] = Grant(t.name, frozenset({READ, ADMIN}))
        public_keys = {t.name: [ed25519_public_key(k) for k in t.jwt_public_keys] for t in tenants}
        self._tokens = TokenVerifier(config.jwt_secret, set(self.tenants), hashes, public_keys)
        self.cors_origins = tuple(o for t in tenants for o in t.allowed_origins)

    # -- sockets ------------------------------------------------------------

    def tracker(self, query: dict[str, str], headers: dict[str, str]) -> Principal:
        """A tracker upgrade: its write key's tenant, from an allowed origin."""
        if self.dev_mode:
            return DEV_PRINCIPAL
        key = query.get("key", "")
        if not key:
            raise HttpError(401, "invalid_key", "a tracker needs its tenant's write key: ?key=")
        tenant = find_digest(self._write_keys, key)
        if tenant is None:
            raise HttpError(401, "invalid_key", "unknown write key")
        origin = headers.get("origin")
        allowed = self.tenants[tenant].allowed_origins
        if origin is not None and allowed and not origin_allowed(origin, allowed):
            raise HttpError(
                403, "origin_not_allowed", f"origin {origin[:200]!r} may not record here"
            )
        return Principal(tenant, frozenset({WRITE}))

    def viewer(self, query: dict[str, str], headers: dict[str, str]) -> Principal:
        """A viewer upgrade: a read token in the header or ``?token=``."""
        if self.dev_mode:
            return DEV_PRINCIPAL
        token = _bearer(headers) or query.get("token", "")
        return self._check(token, READ)

    # -- REST ---------------------------------------------------------------

    def rest(self, headers: dict[str, str], scope: str) -> Principal:
        """A REST request needing ``scope``: a bearer token in the header."""
        if self.dev_mode:
            return DEV_PRINCIPAL
        return self._check(_bearer(headers), scope)

    def cors_allowed(self, origin: str) -> bool:
        return bool(self.cors_origins) and origin_allowed(origin, self.cors_origins)

    def _check(self, token: str, scope: str) -> Principal:
        if not token:
            raise HttpError(
                401,
                "unauthorized",
                "send a token: Authorization: Bearer <token>",
                [(b"www-authenticate", b'Bearer realm="replaywire"')],
            )
        try:
            grant = self._tokens.verify(token)
        except TokenError as exc:
            raise HttpError(
                401,
                "invalid_token",
                str(exc),
                [(b"www-authenticate", b'Bearer realm="replaywire", error="invalid_token"')],
            ) from None
        principal = Principal(grant.tenant, grant.scopes)
        if not principal.allows(scope):
            raise HttpError(
                403,
                "insufficient_scope",
                f"this token lacks the {scope!r} scope",
                [
                    (
                        b"www-authenticate",
                        b'Bearer realm="replaywire", error="insufficient_scope", scope="'
                        + scope.encode()
                        + b'"',
                    )
                ],
            )
        return principal


def _bearer(headers: dict[str, str]) -> str:
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
