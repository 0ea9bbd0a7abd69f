"""LOG_DIR: daily files, a separate error file, gzip of finished days,
retention, and a bounded queue in front of the writer thread."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from replaywire.config import Config, ConfigError
from replaywire.observability import logfiles
from replaywire.observability.logfiles import DailyFileHandler, LogFileWriter
from replaywire.observability.logging import (
    configure_logging,
    flush_log_files,
    get_logger,
    shutdown_logging,
)

DOCUMENTED = ("timestamp", "level", "event", "logger", "instance")


class FakeDay:
    """A clock that only says the date, moved by hand."""

    def __init__(self, start: date) -> None:
        self.day = start

    def __call__(self) -> date:
        return self.day

    def advance(self, days: int = 1) -> None:
        self.day += timedelta(days=days)


@pytest.fixture
def files_logging(restore_logging: None) -> Iterator[None]:
    yield
    shutdown_logging()


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": message, "levelno": level, "levelname": "X"})


def read_lines(path: Path) -> list[str]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh]


def test_one_file_per_day_and_yesterday_is_gzipped(tmp_path: Path) -> None:
    clock = FakeDay(date(2025, 3, 30))
    handler = DailyFileHandler(tmp_path, "replaywire", max_files=14, today=clock)
    handler.handle(record("first"))
    handler.handle(record("second"))
    clock.advance()
    handler.handle(record("third"))
    handler.close()

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "replaywire-2025-03-30.log.gz",
        "replaywire-2025-03-31.log",
    ]
    assert read_lines(tmp_path / "replaywire-2025-03-30.log.gz") == ["first", "second"]
    assert read_lines(tmp_path / "replaywire-2025-03-31.log") == ["third"]


def test_retention_keeps_max_files_days(tmp_path: Path) -> None:
    clock = FakeDay(date(2025, 1, 1))
    handler = DailyFileHandler(tmp_path, "replaywire", max_files=3, today=clock)
    (tmp_path / "unrelated.txt").write_text("kept")
    (tmp_path / "replaywire-error-2020-01-01.log").write_text("another prefix: not ours")
    for _ in range(6):
        handler.handle(record(f"line of {clock.day}"))
        clock.advance()
    handler.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "replaywire-2025-01-04.log.gz",
        "replaywire-2025-01-05.log.gz",
        "replaywire-2025-01-06.log",
        "replaywire-error-2020-01-01.log",
        "unrelated.txt",
    ]


def test_a_restart_appends_and_compresses_what_an_earlier_run_left(tmp_path: Path) -> None:
    (tmp_path / "replaywire-2025-05-01.log").write_text("from a run that stopped\n")
    (tmp_path / "replaywire-2025-05-02.log").write_text("earlier today\n")
    handler = DailyFileHandler(tmp_path, "replaywire", max_files=14, today=lambda: date(2025, 5, 2))
    handler.handle(record("after the restart"))
    handler.close()
    assert read_lines(tmp_path / "replaywire-2025-05-01.log.gz") == ["from a run that stopped"]
    assert not (tmp_path / "replaywire-2025-05-01.log").exists()
    assert read_lines(tmp_path / "replaywire-2025-05-02.log") == [
        "earlier today",
        "after the restart",
    ]


def test_configured_log_dir_gets_json_lines_and_an_error_file(
    tmp_path: Path, files_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeDay(date(2025, 6, 1))
    # Console on stdout: the files are JSON whatever stdout shows.
    config = Config(log_format="console", instance_id="i-1", log_dir=str(tmp_path))
    configure_logging(config, today=clock)
    log = get_logger("replaywire.test")
    log.info("session_started", session_id="s1")
    logging.getLogger("somelib").error("disk %s failed", "/dev/sda")
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        log.exception("flush_failed", chunks=3)
    assert flush_log_files()
    clock.advance()
    log.warning("next_day")
    shutdown_logging()

    day1 = [json.loads(line) for line in read_lines(tmp_path / "replaywire-2025-06-01.log.gz")]
    assert [line["event"] for line in day1] == [
        "session_started",
        "disk /dev/sda failed",
        "flush_failed",
    ]
    for line in day1:
        assert list(line)[:5] == list(DOCUMENTED)
        assert line["instance"] == "i-1"
    assert day1[0]["session_id"] == "s1"
    assert day1[2]["error_type"] == "OSError"
    assert day1[2]["error_message"] == "[Errno 28] No space left on device"
    assert "Traceback" in day1[2]["exception"]

    errors = [
        json.loads(line) for line in read_lines(tmp_path / "replaywire-error-2025-06-01.log.gz")
    ]
    assert [line["event"] for line in errors] == ["disk /dev/sda failed", "flush_failed"]
    day2 = [json.loads(line) for line in read_lines(tmp_path / "replaywire-2025-06-02.log")]
    assert [line["event"] for line in day2] == ["next_day"]
    assert "session_started" in capsys.readouterr().out  # stdout still gets everything


def test_unwritable_log_dir_is_a_config_error(tmp_path: Path, restore_logging: None) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as exc_info:
        configure_logging(Config(log_dir=str(blocker / "logs")))
    assert exc_info.value.setting == "log_dir"


class Gate(logging.Handler):
    """Holds the writer thread until opened, so the queue fills."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.open.wait(10)
        self.lines.append(record.getMessage())


def test_a_full_queue_drops_new_lines_counts_them_and_says_so(tmp_path: Path) -> None:
    def notice(n: int) -> logging.LogRecord:
        return record(f"log_records_dropped {n}", logging.WARNING)

    writer = LogFileWriter(
        tmp_path,
        max_files=2,
        formatter=logging.Formatter("%(message)s"),
        notice=notice,
        queue_size=5,
    )
    gate = Gate()
    writer.files = [gate]
    writer._listener.handlers = (gate,)
    before = logfiles.dropped_records()
    writer.start()
    logger = logging.getLogger("replaywire.test.queue")
    logger.propagate = False
    logger.addHandler(writer.handler)
    try:
        logger.warning("line 0")  # taken by the thread, which then waits at the gate
        while not writer.queue.empty():
            pass
        for i in range(1, 21):
            logger.warning("line %d", i)  # never blocks: 5 queued, 15 dropped
        assert logfiles.dropped_records() - before == 15
        gate.open.set()
        assert writer.flush()
        logger.warning("after")
        assert writer.flush()
    finally:
        logger.removeHandler(writer.handler)
        writer.stop()
    # The notice comes with the next line the thread writes after the drops.
    assert gate.lines == [
        "line 0",
        "log_records_dropped 15",
        "line 1",
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "after",
    ]
