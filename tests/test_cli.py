"""The ``replaywire`` command: flags generated from the knobs, env and flag
precedence, and the hand-off to ``replaywire.app.serve``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import replaywire
from replaywire import cli
from replaywire.config import Config, knobs

# The package the tests import, wherever it is installed (source tree or the
# built wheel), so that the subprocesses run the same code.
PACKAGE_ROOT = str(Path(replaywire.__file__).resolve().parent.parent)


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k.upper() not in _KNOB_ENV}
    environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])
    )
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "replaywire", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_KNOB_ENV = {f.name.upper() for f in knobs()}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process tests must not see knobs set in the outer environment."""
    for name in _KNOB_ENV:
        monkeypatch.delenv(name, raising=False)


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "config" in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"replaywire {replaywire.__version__}"


def test_no_command_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: replaywire" in result.stderr


def test_serve_help_lists_every_knob_with_its_env_var() -> None:
    result = run("serve", "--help")
    assert result.returncode == 0, result.stderr
    # argparse wraps help text; compare with whitespace collapsed.
    text = " ".join(result.stdout.split())
    for f in knobs():
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert f"env {f.name.upper()}" in text, f.name


def test_config_prints_defaults_as_json() -> None:
    result = run("config")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert {f.name: printed[f.name] for f in knobs()} == {f.name: f.default for f in knobs()}


def test_config_into_a_reader_that_leaves_early_is_quiet() -> None:
    """`replaywire config --format env | head`: the reader is gone before
    the output is written (its end of the pipe is closed before the command
    has even imported), so the write fails with EPIPE every time."""
    environ = {k: v for k, v in os.environ.items() if k.upper() not in _KNOB_ENV}
    environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "replaywire", "config", "--format", "env"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141  # 128 + SIGPIPE, as `yes | head` ends
    assert stderr == ""


def test_flag_placeholders_say_what_the_value_is() -> None:
    text = " ".join(run("serve", "--help").stdout.split())
    assert "--viewer-fanout-budget SHARE" in text
    assert "--session-idle-timeout SECONDS" in text
    assert "--port N" in text


def test_config_applies_env_then_flags() -> None:
    env_only = json.loads(run("config", BATCH_SIZE="7", SESSION_IDLE_TIMEOUT="2.5").stdout)
    assert env_only["batch_size"] == 7
    assert env_only["session_idle_timeout"] == 2.5

    result = run("config", "--batch-size", "9", "--port", "0", BATCH_SIZE="7")
    assert result.returncode == 0, result.stderr
    both = json.loads(result.stdout)
    assert both["batch_size"] == 9  # the flag beats the environment
    assert both["port"] == 0  # a falsy flag value still counts as given


def test_flags_parse_like_env_vars(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--max-buffer-bytes", "1_000", "--handshake-timeout", "0.5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["max_buffer_bytes"] == 1000
    assert printed["handshake_timeout"] == 0.5


def test_config_masks_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--database-url", "postgresql://app:s3cret@db:5432/rw"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert json.loads(out)["database_url"] == "postgresql://app:***@db:5432/rw"


def test_bad_env_value_is_a_usage_error() -> None:
    result = run("config", BATCH_SIZE="lots")
    assert result.returncode == 2
    assert "BATCH_SIZE='lots': expected int" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["serve", "--port", "http"])
    assert exc_info.value.code == 2
    assert "argument --port: expected int" in capsys.readouterr().err


def test_serve_hands_the_config_to_app_serve(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    seen: list[Config] = []

    def fake_serve(config: Config) -> int:
        seen.append(config)
        return 3

    # cli imports replaywire.app lazily, inside the command.
    monkeypatch.setitem(sys.modules, "replaywire.app", types.SimpleNamespace(serve=fake_serve))
    monkeypatch.setenv("BATCH_SIZE", "7")
    monkeypatch.setenv("LOG_LEVEL", "warning")

    assert cli.main(["serve", "--port", "0", "--log-format", "json"]) == 3

    assert seen == [Config(port=0, batch_size=7, log_level="warning", log_format="json")]
    assert logging.getLogger().level == logging.WARNING  # logging was configured first


def test_serve_rejects_bad_log_level_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    def fake_serve(config: Config) -> int:
        raise AssertionError("must not start")

    monkeypatch.setitem(sys.modules, "replaywire.app", types.SimpleNamespace(serve=fake_serve))
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["serve", "--log-level", "chatty"])
    assert exc_info.value.code == 2
    assert "LOG_LEVEL='chatty'" in capsys.readouterr().err
