"""Configuration from a TOML file, the environment and flags; every value
checked at start with the bad setting named; secrets redacted on print."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from replaywire import cli
from replaywire.config import Config, ConfigError, knobs, redact


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for f in knobs():
        monkeypatch.delenv(f.name.upper(), raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "replaywire.toml"
    path.write_text(text)
    return path


def test_file_then_env_then_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        'port = 9000\nbatch_size = 50\nlog_level = "debug"\nretention_interval = 60\n',
    )
    config = Config.from_env({"BATCH_SIZE": "70"}, file=path, log_level="error")
    assert (config.port, config.batch_size, config.log_level) == (9000, 70, "error")
    assert config.retention_interval == 60.0 and isinstance(config.retention_interval, float)

    assert cli.main(["config", "--config", str(path), "--port", "9001"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["port"], printed["batch_size"]) == (9001, 50)


@pytest.mark.parametrize(
    ("text", "setting", "words"),
    [
        ("prot = 1\n", "prot", "did you mean 'port'"),
        ('port = "80"\n', "port", "expected int"),
        ("ws_deflate = 1\n", "ws_deflate", "expected true or false"),
        ("batch_size = true\n", "batch_size", "expected int"),
        ("port = 70000\n", "port", "PORT=70000: expected 0..65535"),
        ("batch_size = 0\n", "batch_size", "BATCH_SIZE=0: expected at least 1"),
        ('log_format = "xml"\n', "log_format", "expected one of auto, json, console"),
        ('database_url = "mysql://x"\n', "database_url", "DATABASE_URL"),
        ("port = \n", "config", "not valid TOML"),
    ],
)
def test_bad_file_values_name_the_setting(
    tmp_path: Path, text: str, setting: str, words: str
) -> None:
    with pytest.raises(ConfigError) as exc_info:
        Config.from_env({}, file=write(tmp_path, text))
    assert exc_info.value.setting == setting
    assert exc_info.value.code == "invalid_config"
    assert words in str(exc_info.value)


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["serve", "--config", str(tmp_path / "nope.toml")])
    assert exc_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "nope.toml" in err


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"DRAIN_SECONDS": "-1"}, "DRAIN_SECONDS=-1.0: expected at least 0"),
        ({"LOG_MAX_FILES": "0"}, "LOG_MAX_FILES=0: expected at least 1"),
        ({"WS_DEFLATE": "maybe"}, "WS_DEFLATE='maybe': expected true or false"),
        ({"VIEWER_DEFLATE_LEVEL": "10"}, "VIEWER_DEFLATE_LEVEL=10: expected 0..9"),
        ({"RETENTION_INTERVAL": "nan"}, "RETENTION_INTERVAL=nan: expected a number"),
    ],
)
def test_bad_env_values_name_the_setting(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.").replace("(", r"\(")):
        Config.from_env(env)


def test_defaults_are_valid_and_documented() -> None:
    config = Config()
    assert config.drain_seconds == 15.0
    assert config.log_max_files == 14
    assert config.log_dir == ""
    for f in knobs():
        assert str(f.metadata["help"]).strip(), f.name


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/rw", "postgresql://app:***@db:5432/rw"),
        (
            "postgresql://app@db/rw?password=s3cret&sslmode=require",
            "postgresql://app@db/rw?password=***&sslmode=require",
        ),
        ("postgresql://app:s3[cret@db/rw", "postgresql://app:***@db/rw"),
        ("postgresql://app:p@ss@db/rw", "postgresql://app:***@db/rw"),
        ("sqlite:///./data/x.db", "sqlite:///./data/x.db"),
    ],
)
def test_urls_are_redacted(url: str, shown: str) -> None:
    assert redact("database_url", url) == shown
    assert "s3" not in redact("database_url", url).replace("sslmode", "")


def test_config_prints_toml_that_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["config", "--format", "toml", "--database-url", "postgresql://u:pw@h/db"]) == 0
    out = capsys.readouterr().out
    assert "pw@" not in out
    path = write(tmp_path, out.replace("u:***@", "u@"))
    assert tomllib.loads(path.read_text())["database_url"] == "postgresql://u@h/db"
    assert Config.from_env({}, file=path) == Config(database_url="postgresql://u@h/db")


def test_config_prints_env_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--format", "env", "--no-ws-deflate"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["WS_DEFLATE"] == "false"
    assert lines["DRAIN_SECONDS"] == "15.0"
    assert set(lines) == {f.name.upper() for f in knobs()}
