"""Tenants in the configuration: the TOML tables, the TENANTS variable,
their checks, and how `replaywire config` prints them (JWT_SECRET masked)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from replaywire import Config, cli
from replaywire.auth.tokens import token_hash
from replaywire.config import ConfigError

HASH = token_hash("rwt_x")
SECRET = "0123456789abcdef0123456789abcdef"
TOML = f"""
host = "0.0.0.0"
jwt_secret = "{SECRET}"

[tenants.acme]
write_keys = ["pk_1", "pk_2"]
allowed_origins = ["https://acme.test"]
api_token_hashes = ["{HASH}"]

[tenants.beta-2]
write_keys = ["pk_3"]
"""


def test_tenants_from_toml_and_env(tmp_path: Path) -> None:
    path = tmp_path / "rw.toml"
    path.write_text(TOML)
    config = Config.from_env({}, file=path)
    assert [t.name for t in config.tenants] == ["acme", "beta-2"]
    assert config.tenants[0].write_keys == ("pk_1", "pk_2")
    assert config.tenants[0].api_token_hashes == (HASH,)
    assert not config.dev_mode
    env = {"TENANTS": json.dumps({"gamma": {"write_keys": ["pk_9"]}}), "HOST": "0.0.0.0"}
    from_env = Config.from_env(env, file=path)  # the environment beats the file
    assert [t.name for t in from_env.tenants] == ["gamma"]


@pytest.mark.parametrize(
    ("tenants", "words"),
    [
        ({"Acme": {}}, "tenant name"),
        ({"a:b": {}}, "tenant name"),
        ({"acme": {"write_key": ["x"]}}, "unknown field 'write_key'"),
        ({"acme": {"write_keys": "x"}}, "list of non-empty strings"),
        ({"acme": {"write_keys": [""]}}, "list of non-empty strings"),
        ({"acme": {"api_token_hashes": ["abc"]}}, "not a sha256 hex digest"),
        ({"acme": {"allowed_origins": ["https://a.test/"]}}, "scheme://host"),
        ({"a": {"write_keys": ["k"]}, "b": {"write_keys": ["k"]}}, "a key of tenant 'a'"),
    ],
)
def test_bad_tenants_are_refused(tenants: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        Config(tenants=tenants)  # type: ignore[arg-type]
    assert caught.value.setting == "tenants"


def test_short_jwt_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Config(jwt_secret="short")


def test_bad_tenants_env() -> None:
    with pytest.raises(ConfigError, match="TENANTS"):
        Config.from_env({"TENANTS": "[1]"})
    with pytest.raises(ConfigError, match="TENANTS"):
        Config.from_env({"TENANTS": "{nope"})


def test_config_prints_tenants_and_masks_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rw.toml"
    path.write_text(TOML)
    assert cli.main(["config", "--config", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["jwt_secret"] == "***"
    assert printed["tenants"]["acme"]["write_keys"] == ["pk_1", "pk_2"]
    assert cli.main(["config", "--config", str(path), "--format", "toml"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    again = tmp_path / "again.toml"
    again.write_text(out.replace('"***"', f'"{SECRET}"'))
    assert Config.from_env({}, file=again) == Config.from_env({}, file=path)
    assert cli.main(["config", "--config", str(path), "--format", "env"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["JWT_SECRET"] == "***"
    assert json.loads(lines["TENANTS"])["beta-2"]["write_keys"] == ["pk_3"]
    assert tomllib.loads(out)["tenants"]["beta-2"]["write_keys"] == ["pk_3"]


def test_token_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rw.toml"
    path.write_text(TOML)
    assert cli.main(["token", "--config", str(path), "--tenant", "acme", "--scope", "admin"]) == 0
    from replaywire.auth.tokens import TokenVerifier

    token = capsys.readouterr().out.strip()
    grant = TokenVerifier(SECRET, {"acme"}, {}).verify(token)
    assert grant.tenant == "acme" and grant.allows("admin")
    assert cli.main(["token", "--opaque"]) == 0
    token_line, hash_line = capsys.readouterr().out.splitlines()
    assert token_hash(token_line.split()[1]) == hash_line.split()[1]
    with pytest.raises(SystemExit):
        cli.main(["token", "--config", str(path), "--tenant", "nope"])
