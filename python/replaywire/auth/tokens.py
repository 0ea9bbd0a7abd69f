"""Viewer and API credentials: JWTs (HS256 or EdDSA) and opaque tokens
stored hashed.

A JWT carries ``tenant``, ``exp`` and ``scope`` (space-separated, like
OAuth's: ``"read"`` or ``"admin"``; admin implies read). It is signed
either

- with HS256 and the server's ``JWT_SECRET`` (the operator mints tokens
  for any tenant), or
- with EdDSA (Ed25519) by the tenant's own issuer, whose public keys the
  tenant lists in ``jwt_public_keys`` (several at once, to rotate). The
  server holds no secret that could mint such a token, and a tenant's key
  only ever signs for that tenant: the ``tenant`` claim picks the keys to
  try, so a token naming tenant B signed with A's key fails its signature.

Each algorithm is checked only with its own kind of key (``algorithms=`` is
never taken from the token), so a token cannot choose ``none`` or pass a
public key off as an HMAC secret. An opaque token is any other string; the
server keeps only its sha256 (``tenants.NAME.api_token_hashes`` /
``admin_token_hashes``), so a leaked configuration does not leak tokens.

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
from typing import Any, TypeVar

import jwt

from ..errors import TokenError as TokenError
from ..errors import TokenExpired as TokenExpired

SCOPES = ("read", "admin")
T = TypeVar("T")
OPAQUE_PREFIX = "rwt_"  # what `replaywire token --opaque` makes; any string works
LEEWAY_SECONDS = 30  # clock skew allowed on exp between the issuer and us


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
    """An HS256 JWT for ``tenant`` with ``scope``, valid for ``ttl_seconds``."""
    return jwt.encode(_claims(tenant, scope, ttl_seconds), secret, algorithm="HS256")


def issue_eddsa_jwt(private_key_pem: str, tenant: str, scope: str, ttl_seconds: float) -> str:
    """An EdDSA JWT signed with an Ed25519 private key (PEM): what a
    tenant's own issuer makes. Raises ``ValueError`` for another key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("an Ed25519 private key is expected (EdDSA)")
    return jwt.encode(_claims(tenant, scope, ttl_seconds), key, algorithm="EdDSA")


def new_ed25519_keypair() -> tuple[str, str]:
    """A fresh Ed25519 private key and its public key, both PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


def _claims(tenant: str, scope: str, ttl_seconds: float) -> dict[str, object]:
    now = int(time.time())
    return {"tenant": tenant, "scope": scope, "iat": now, "exp": now + int(ttl_seconds)}


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
        public_keys: dict[str, list[Any]] | None = None,
    ) -> None:
        self._secret = jwt_secret
        self._tenants = tenants
        self._hashes = [(bytes.fromhex(h), grant) for h, grant in hashes.items()]
        self._public_keys = {t: keys for t, keys in (public_keys or {}).items() if keys}

    def verify(self, token: str) -> Grant:
        """The grant of ``token``; raises :class:`TokenError` otherwise."""
        if token.count(".") == 2:
            return self._verify_jwt(token)
        grant = find_digest(self._hashes, token)
        if grant is None:
            raise TokenError("unknown token")
        return grant

    def _verify_jwt(self, token: str) -> Grant:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        if alg == "HS256":
            if not self._secret:
                raise TokenError("HS256 JWTs are not accepted: the server has no JWT_SECRET")
            claims = _decode(token, self._secret, "HS256")
        elif alg == "EdDSA":
            claims = self._verify_eddsa(token)
        else:
            raise TokenError(f"invalid token: algorithm {str(alg)[:20]!r}; HS256 or EdDSA")
        tenant, scope = claims["tenant"], claims["scope"]
        if not isinstance(tenant, str) or tenant not in self._tenants:
            raise TokenError("token names no tenant of this server")
        if not isinstance(scope, str):
            raise TokenError("scope must be a string")
        return Grant(tenant, frozenset(scope.split()) & frozenset(SCOPES))

    def _verify_eddsa(self, token: str) -> dict[str, Any]:
        """Claims of an EdDSA token, checked against the keys of the tenant
        it names (read unverified only to pick those keys)."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        tenant = unverified.get("tenant")
        keys = self._public_keys.get(tenant) if isinstance(tenant, str) else None
        if not keys:
            raise TokenError("EdDSA JWTs are not accepted for this tenant: it lists no keys")
        failure: TokenError | None = None
        for key in keys:  # rotation: any listed key
            try:
                return _decode(token, key, "EdDSA")
            except TokenExpired:
                raise  # PyJWT checks exp only once the signature matched
            except TokenError as exc:
                failure = exc
        assert failure is not None
        raise failure


def _decode(token: str, key: Any, algorithm: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            options={"require": ["exp", "tenant", "scope"]},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    return claims
