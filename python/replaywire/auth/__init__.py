"""Tenants, credentials and origins: who may record, who may read.

- :mod:`.tenants`: the configured tenants, and session ids namespaced by tenant;
- :mod:`.tokens`: JWTs and hashed opaque tokens;
- :mod:`.origins`: tracker origins, CORS and security headers;
- :mod:`.principals`: :class:`Auth`, which turns a request into a :class:`Principal`.
"""

from .principals import ADMIN, READ, WRITE, Auth, Principal
from .tenants import Tenant, TenantError, client_id, parse_tenants, session_key

__all__ = [
    "ADMIN",
    "READ",
    "WRITE",
    "Auth",
    "Principal",
    "Tenant",
    "TenantError",
    "client_id",
    "parse_tenants",
    "session_key",
]
