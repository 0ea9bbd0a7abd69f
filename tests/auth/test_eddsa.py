"""EdDSA JWTs from a tenant's own issuer: the tenant lists Ed25519 public
keys (``jwt_public_keys``, several at once for rotation); a token naming a
tenant must be signed by one of that tenant's keys. The server holds no
secret that could mint such a token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from auth.tenants import SECRET, TENANTS, upgrade
from e2e.clients import http
from replaywire import Server, cli
from replaywire.auth.tenants import ed25519_public_key
from replaywire.auth.tokens import (
    TokenError,
    TokenVerifier,
    issue_eddsa_jwt,
    new_ed25519_keypair,
)
from replaywire.config import Config, ConfigError

ACME_OLD = new_ed25519_keypair()
ACME_NEW = new_ed25519_keypair()
BETA = new_ed25519_keypair()
STRANGER = new_ed25519_keypair()
WITH_KEYS: dict[str, Any] = {
    "acme": {**TENANTS["acme"], "jwt_public_keys": [ACME_OLD[1], ACME_NEW[1]]},
    "beta": {**TENANTS["beta"], "jwt_public_keys": [BETA[1]]},
    "gamma": {"write_keys": ["pk_gamma"]},  # HS256 and opaque tokens only
}


def signed(key: tuple[str, str], tenant: str, scope: str = "read", ttl: float = 300) -> str:
    return issue_eddsa_jwt(key[0], tenant, scope, ttl)


def hs256_with_public_key(tenant: str, public_pem: str) -> str:
    """The classic algorithm confusion: an HMAC "signed" with the public key."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"tenant": tenant, "scope": "admin", "exp": 2**40}).encode())
    mac = hmac.new(public_pem.encode(), head + b"." + body, hashlib.sha256).digest()
    return (head + b"." + body + b"." + b64(mac)).decode()


async def status_of(server: Server, token: str) -> tuple[int, dict[str, Any]]:
    status, _, body = await http(
        server, "/sessions/active", "GET", {"Authorization": f"Bearer {token}"}
    )
    return status, json.loads(body)


async def test_either_listed_key_of_the_tenant_is_accepted(start_server: Any) -> None:
    server = await start_server(tenants=WITH_KEYS, jwt_secret=SECRET)
    for key in (ACME_OLD, ACME_NEW):
        status, _ = await status_of(server, signed(key, "acme"))
        assert status == 200
    status, _ = await status_of(server, signed(BETA, "beta"))
    assert status == 200
    status, _ = await upgrade(server, f"/ws?type=viewer&token={signed(ACME_NEW, 'acme')}")
    assert status == 101


REFUSED = {
    "another tenant's key": (lambda: signed(ACME_NEW, "beta"), "invalid token"),
    "an unlisted key": (lambda: signed(STRANGER, "acme"), "invalid token"),
    "expired": (lambda: signed(ACME_OLD, "acme", ttl=-120), "token has expired"),
    "tenant without keys": (lambda: signed(BETA, "gamma"), "lists no keys"),
    "unknown tenant": (lambda: signed(BETA, "nope"), "lists no keys"),
    "public key as HMAC secret": (
        lambda: hs256_with_public_key("acme", ACME_NEW[1]),
        "invalid token",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_tokens_not_signed_by_the_tenants_own_keys_are_refused(
    start_server: Any, case: str
) -> None:
    server = await start_server(tenants=WITH_KEYS, jwt_secret=SECRET)
    make, words = REFUSED[case]
    status, body = await status_of(server, make())
    assert (status, body["error"]["code"]) == (401, "invalid_token")
    assert words in body["error"]["message"]


def test_eddsa_works_without_a_jwt_secret() -> None:
    verifier = TokenVerifier("", {"acme"}, {}, {"acme": [ed25519_public_key(ACME_NEW[1])]})
    grant = verifier.verify(signed(ACME_NEW, "acme", scope="admin"))
    assert grant.tenant == "acme" and grant.allows("admin")
    with pytest.raises(TokenError, match="no JWT_SECRET"):
        verifier.verify(hs256_with_public_key("acme", "x"))


@pytest.mark.parametrize(
    ("pem", "words"),
    [
        ("not a key", "not a PEM public key"),
        (ACME_NEW[0], "not a PEM public key"),  # the private half
    ],
)
def test_bad_public_keys_are_refused_at_load(pem: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Config(tenants={"acme": {"jwt_public_keys": [pem]}})  # type: ignore[arg-type]


def test_token_command_makes_keys_and_eddsa_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["token", "--keypair"]) == 0
    out = capsys.readouterr().out
    private = out[: out.index("-----BEGIN PUBLIC KEY-----")]
    public = out[len(private) :]
    (tmp_path / "issuer.pem").write_text(private)
    config = tmp_path / "rw.toml"
    config.write_text(f'[tenants.acme]\njwt_public_keys = ["""\n{public}"""]\n')
    argv = ["token", "--config", str(config), "--tenant", "acme"]
    assert cli.main([*argv, "--private-key", str(tmp_path / "issuer.pem")]) == 0
    token = capsys.readouterr().out.strip()
    keys = [
        ed25519_public_key(p) for p in Config.from_env({}, file=config).tenants[0].jwt_public_keys
    ]
    assert TokenVerifier("", {"acme"}, {}, {"acme": keys}).verify(token).tenant == "acme"
    with pytest.raises(SystemExit):
        cli.main([*argv, "--private-key", str(tmp_path / "missing.pem")])
