"""Viewer and API credentials: JWTs (HS256) and opaque tokens stored hashed.

A JWT carries ``tenant``, ``exp`` and ``scope`` (space-separated, like
OAuth's: ``"read"`` or ``"admin"``; admin implies read) and is signed with
``JWT_SECRET``; only HS256 is accepted, so a token cannot choose its own
algorithm (``none``, or a public key passed off as an HMAC secret). An
opaque token is any other string; the server keeps only its sha256
(``tenants.NAME.api_token_hashes`` / ``admin_token_hashes``), so a leaked
configuration does not leak tokens.

Comparison: a presented token's sha256 is compared with
:func:`hmac.compare_digest` against every stored digest, without stopping
at a match (:func:`find_digest`), so the time taken says nothing about how
close a guess came. That costs one comparison per configured credential:
microseconds for hundreds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TypeVar

import jwt

SCOPES = ("read", "admin")
T = TypeVar("T")
OPAQUE_PREFIX = "rwt_"  # what `replaywire token --opaque` makes; any string works
LEEWAY_SECONDS = 30  # clock skew allowed on exp between the issuer and us


class TokenError(Exception):
    """A credential that proves nothing: malformed, badly signed, expired,
    unknown, or naming an unknown tenant. The message is safe to send back."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified credential allows: one tenant, with these scopes."""

    tenant: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def token_hash(token: str) -> str:
    """The sha256 hex digest stored for an opaque token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_opaque_token() -> tuple[str, str]:
    """A fresh random opaque token and the hash to configure for it."""
    token = OPAQUE_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def issue_jwt(secret: str, tenant: str, scope: str, ttl_seconds: float) -> str:
    """A JWT for ``tenant`` with ``scope``, valid for ``ttl_seconds``."""
    now = int(time.time())
    claims = {"tenant": tenant, "scope": scope, "iat": now, "exp": now + int(ttl_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")


def find_digest(entries: list[tuple[bytes, T]], secret: str) -> T | None:
    """The value stored with ``secret``'s sha256 digest, compared in
    constant time against every entry (no early exit), or None."""
    digest = hashlib.sha256(secret.encode()).digest()
    found: T | None = None
    for stored, value in entries:
        if hmac.compare_digest(digest, stored):
            found = value
    return found


class TokenVerifier:
    """Checks bearer tokens against the configured secret and hashes."""

    def __init__(
        self,
        jwt_secret: str,
        tenants: set[str],
        hashes: dict[str, Grant],
    ) -> None:
        self._secret = jwt_secret
        self._tenants = tenants
        self._hashes = [(bytes.fromhex(h), grant) for h, grant in hashes.items()]

    def verify(self, token: str) -> Grant:
        """The grant of ``token``; raises :class:`TokenError` otherwise."""
        if token.count(".") == 2:
            return self._verify_jwt(token)
        grant = find_digest(self._hashes, token)
        if grant is None:
            raise TokenError("unknown token")
        return grant

    def _verify_jwt(self, token: str) -> Grant:
        if not self._secret:
            raise TokenError("JWTs are not accepted: the server has no JWT_SECRET")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["exp", "tenant", "scope"]},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        tenant, scope = claims["tenant"], claims["scope"]
        if not isinstance(tenant, str) or tenant not in self._tenants:
            raise TokenError("token names no tenant of this server")
        if not isinstance(scope, str):
            raise TokenError("scope must be a string")
        return Grant(tenant, frozenset(scope.split()) & frozenset(SCOPES))
