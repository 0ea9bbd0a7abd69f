"""configure_logging: one JSON-lines pipeline for structlog and stdlib
loggers, with context bound per trio task."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

import replaywire
from replaywire.config import Config, ConfigError
from replaywire.observability import configure_logging, get_logger

REQUIRED = {"timestamp", "level", "event", "logger", "instance"}


@pytest.fixture(autouse=True)
def _restore(restore_logging: None) -> None:
    """Every test here configures logging; undo it afterwards."""


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_lines_have_the_required_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="json", instance_id="test-1"))
    before = datetime.now(UTC)
    get_logger("replaywire.test").info("session_started", session_id="s1", events=3)

    [line] = lines(capsys)
    assert line.keys() >= REQUIRED
    assert line["event"] == "session_started"
    assert line["level"] == "info"
    assert line["logger"] == "replaywire.test"
    assert line["instance"] == "test-1"
    assert line["session_id"] == "s1"
    assert line["events"] == 3
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= stamp <= datetime.now(UTC) + timedelta(seconds=5)


def test_instance_defaults_to_host_and_pid(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="json"))
    get_logger("t").warning("hello")
    [line] = lines(capsys)
    assert line["instance"] == f"{socket.gethostname()}-{os.getpid()}"
    assert line["level"] == "warning"


def test_stdlib_loggers_go_through_the_same_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="json", instance_id="i"))
    structlog.contextvars.bind_contextvars(conn_id=42)
    logging.getLogger("somelib.module").warning("disk %s is %d%% full", "/data", 93)

    [line] = lines(capsys)
    assert line.keys() >= REQUIRED
    assert line["event"] == "disk /data is 93% full"
    assert line["logger"] == "somelib.module"
    assert line["level"] == "warning"
    assert line["instance"] == "i"
    assert line["conn_id"] == 42


def test_level_filters_both_kinds_of_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="json", log_level="warning"))
    log = get_logger("t")
    log.debug("dropped_debug")
    log.info("dropped_info")
    logging.getLogger("lib").info("dropped too")
    log.error("kept")
    assert [line["event"] for line in lines(capsys)] == ["kept"]


def test_exceptions_are_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="json"))
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("t").exception("flush_failed", chunk=7)
    [line] = lines(capsys)
    assert line["level"] == "error"
    assert line["chunk"] == 7
    assert "ValueError: boom" in line["exception"]


def test_configuring_twice_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="json", instance_id="first"))
    configure_logging(Config(log_format="json", instance_id="second"))
    get_logger("t").info("once")
    logging.getLogger("lib").warning("also once")
    got = lines(capsys)
    assert [line["event"] for line in got] == ["once", "also once"]
    assert {line["instance"] for line in got} == {"second"}


def test_logger_made_before_configuring_follows_the_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = get_logger("early")
    configure_logging(Config(log_format="json", instance_id="a"))
    log.info("first")
    configure_logging(Config(log_format="json", instance_id="b"))
    log.info("second")
    assert [line["instance"] for line in lines(capsys)] == ["a", "b"]


async def test_each_trio_task_has_its_own_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="json"))
    log = get_logger("replaywire.ws")
    structlog.contextvars.bind_contextvars(server="s")
    both_bound = trio.Event()
    bound = 0

    async def connection(conn_id: int) -> None:
        nonlocal bound
        structlog.contextvars.bind_contextvars(conn_id=conn_id)
        bound += 1
        if bound == 2:
            both_bound.set()
        await both_bound.wait()  # both tasks have bound before either logs
        log.info("connection_closed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection, 1)
        nursery.start_soon(connection, 2)
    log.info("server_stopped")

    got = lines(capsys)
    closed = sorted(line["conn_id"] for line in got if line["event"] == "connection_closed")
    assert closed == [1, 2]
    assert all(line["server"] == "s" for line in got)
    [stopped] = [line for line in got if line["event"] == "server_stopped"]
    assert "conn_id" not in stopped  # nothing leaked back from the tasks


def test_console_format_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="console"))
    get_logger("t").info("viewer_joined", session_id="abc")
    out = capsys.readouterr().out
    assert "viewer_joined" in out
    assert "session_id" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


@pytest.mark.parametrize(
    ("field", "value"), [("log_level", "chatty"), ("log_format", "xml")], ids=["level", "format"]
)
def test_bad_values_are_config_errors(field: str, value: str) -> None:
    root = logging.getLogger()
    handlers = root.handlers[:]
    with pytest.raises(ConfigError):
        configure_logging(Config(**{field: value}))  # type: ignore[arg-type]
    assert root.handlers == handlers  # nothing changed


def test_auto_format_is_json_when_stdout_is_a_pipe() -> None:
    """In a real process: the default format off a terminal, structlog and
    stdlib lines interleaved on stdout, one JSON object per line."""
    code = (
        "import logging\n"
        "from replaywire.config import Config\n"
        "from replaywire.observability import configure_logging, get_logger\n"
        "configure_logging(Config())\n"
        "get_logger('replaywire.app').info('replaywire_ready', port=8080)\n"
        "logging.getLogger('trio').warning('plain %s', 'message')\n"
    )
    root = str(Path(replaywire.__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if k not in {"LOG_FORMAT", "LOG_LEVEL"}}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["logger"], line["event"]) for line in got] == [
        ("replaywire.app", "replaywire_ready"),
        ("trio", "plain message"),
    ]
    assert all(line.keys() >= REQUIRED for line in got)
    assert result.stderr == ""


def test_json_lines_start_with_the_fixed_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_format="json", instance_id="i"))
    structlog.contextvars.bind_contextvars(conn_id="c1")
    get_logger("t").info("batch_acked", seq=4)
    keys = list(json.loads(capsys.readouterr().out))
    assert keys[:5] == ["timestamp", "level", "event", "logger", "instance"]
    assert set(keys[5:]) == {"conn_id", "seq"}
