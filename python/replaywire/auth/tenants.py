"""Tenants as configured, and how session ids are namespaced by tenant.

A tenant is one project: its tracker write keys (public, like a PostHog
project key: they only let a page record into this tenant), the origins
its pages run on, the hashes of its opaque API tokens, and the Ed25519
public keys of its own token issuer. Viewer JWTs name their tenant in a
claim (see :mod:`.tokens`).

**Session keys.** Clients name sessions by their own ids; the server keys
every session by ``tenant:id`` (:func:`session_key`) everywhere behind the
protocol handlers: the hub, the ring buffers, the fan-out, the rate limits
and storage (``sessions.session_id``, ``chunks.session_id`` and
``session_errors.session_id`` all hold the key). Tenant names are
``[a-z0-9][a-z0-9_-]*``, so the first colon of a key always ends its tenant,
whatever the id holds: two (tenant, id) pairs never share a key, and a
tenant guessing another's id only ever reaches a key of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import TenantError as TenantError

SEPARATOR = ":"
DEFAULT_TENANT = "default"  # the one tenant of development mode
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_HASH = re.compile(r"[0-9a-f]{64}")
_FIELDS = (
    "write_keys",
    "allowed_origins",
    "api_token_hashes",
    "admin_token_hashes",
    "jwt_public_keys",
)


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant's credentials. Every list may be empty: a tenant without
    write keys records nothing, one without token hashes is read only with
    JWTs, one without ``allowed_origins`` accepts trackers from any page."""

    name: str
    write_keys: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    api_token_hashes: tuple[str, ...] = ()  # sha256 hex of opaque tokens with scope read
    admin_token_hashes: tuple[str, ...] = ()  # ... with scope admin
    # Ed25519 public keys (PEM) of the tenant's own token issuer: JWTs with
    # alg EdDSA naming this tenant must be signed by one of them.
    jwt_public_keys: tuple[str, ...] = ()

    def to_table(self) -> dict[str, list[str]]:
        """The TOML/JSON shape it was read from (``replaywire config``)."""
        return {name: list(getattr(self, name)) for name in _FIELDS}


def session_key(tenant: str, session_id: str) -> str:
    """The server's key of ``tenant``'s session ``session_id``."""
    return f"{tenant}{SEPARATOR}{session_id}"


def client_id(key: str) -> str:
    """The id the tenant's clients know a session key by. A key without a
    tenant (sessions opened by tests straight through the hub) is its own id."""
    _, sep, rest = key.partition(SEPARATOR)
    return rest if sep else key


def parse_tenants(data: Mapping[str, Any] | Iterable[Tenant]) -> tuple[Tenant, ...]:
    """Tenants from a ``{name: {write_keys: [...], ...}}`` table (the TOML
    ``[tenants.NAME]`` tables, or the JSON of ``TENANTS``), or already built.

    Raises :class:`TenantError` for a bad name, an unknown field, a value
    that is not a list of strings, a token hash that is not 64 lower-case
    hex digits, or a write key given to two tenants (a key must name one)."""
    if isinstance(data, Mapping):
        tenants = tuple(_tenant(name, table) for name, table in data.items())
    else:
        tenants = tuple(data)
    owner: dict[str, str] = {}
    for tenant in tenants:
        if not isinstance(tenant, Tenant) or not _NAME.fullmatch(tenant.name):
            raise TenantError(
                f"tenant name {getattr(tenant, 'name', tenant)!r}: expected [a-z0-9_-]"
            )
        for key in tenant.write_keys:
            if key in owner and owner[key] != tenant.name:
                raise TenantError(
                    f"tenants.{tenant.name}.write_keys: a key of tenant {owner[key]!r} as well"
                )
            owner[key] = tenant.name
    return tenants


def _tenant(name: str, table: Any) -> Tenant:
    where = f"tenants.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TenantError(f"{where}: a tenant name is 1-64 of a-z, 0-9, '_' and '-'")
    if not isinstance(table, Mapping):
        raise TenantError(f"{where}: expected a table of {', '.join(_FIELDS)}")
    unknown = set(table) - set(_FIELDS)
    if unknown:
        raise TenantError(f"{where}: unknown field {sorted(unknown)[0]!r}; expected {_FIELDS}")
    values: dict[str, tuple[str, ...]] = {}
    for field_name in _FIELDS:
        items = table.get(field_name, [])
        if field_name == "jwt_public_keys" and isinstance(items, list | tuple):
            # PEM blocks from TOML multi-line strings end with a newline.
            items = [i.strip() if isinstance(i, str) else i for i in items]
        if not isinstance(items, list | tuple) or not all(
            isinstance(item, str) and item and item.strip() == item for item in items
        ):
            raise TenantError(f"{where}.{field_name}: expected a list of non-empty strings")
        values[field_name] = tuple(items)
    for field_name in ("api_token_hashes", "admin_token_hashes"):
        for item in values[field_name]:
            if not _HASH.fullmatch(item):
                raise TenantError(
                    f"{where}.{field_name}: {item[:12]!r}... is not a sha256 hex digest"
                    " (64 lower-case hex digits; see `replaywire token`)"
                )
    for origin in values["allowed_origins"]:
        if origin != "*" and ("://" not in origin or origin.endswith("/")):
            raise TenantError(
                f"{where}.allowed_origins: {origin!r}: expected scheme://host[:port]"
                " (no path, no trailing slash), https://*.example.com, or *"
            )
    for pem in values["jwt_public_keys"]:
        try:
            ed25519_public_key(pem)
        except ValueError as exc:
            raise TenantError(f"{where}.jwt_public_keys: {exc}") from None
    return Tenant(name, **values)


def ed25519_public_key(pem: str) -> Any:
    """The Ed25519 public key a PEM string holds; ``ValueError`` otherwise.
    (``cryptography`` is imported here, on first use: only deployments with
    EdDSA keys pay for loading it.)"""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("an Ed25519 public key is expected (EdDSA)")
    return key
