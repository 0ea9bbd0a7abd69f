"""Log files: one file per UTC day, a separate file for errors, gzip when the
day is over, and a retention of ``LOG_MAX_FILES`` days.

The event loop never touches these files. A record is rendered to its JSON
line on the thread that logs it (the same work as for stdout), then handed to
a bounded queue; one writer thread (:class:`LogFileWriter`) takes lines off
the queue and appends them to the files, and it alone rotates, compresses and
deletes. Disk latency, a slow ``gzip`` of yesterday's file or a full disk
therefore delay the files, never the server.

When the queue is full (the disk cannot keep up, or a burst of
``QUEUE_SIZE`` lines arrived at once), the new line is **dropped and
counted**: logging must not block nor grow without bound. The writer thread
writes one ``log_records_dropped`` line (with the count) as soon as it has
room again, and the total is the ``replaywire_log_records_dropped_total``
metric. stdout is not affected: it still gets every line.

Files in ``LOG_DIR``::

    replaywire-2025-06-01.log.gz         every line of a finished day
    replaywire-error-2025-06-01.log.gz   its error and critical lines only
    replaywire-2025-06-02.log            today, appended to (also after a restart)
    replaywire-error-2025-06-02.log

Resource handling: :class:`LogFileWriter` owns the thread and the open
files; :meth:`LogFileWriter.stop` writes what is queued, closes the files
and joins the thread (``configure_logging`` and ``shutdown_logging`` call
it; it is also registered with :mod:`atexit`). Error handling: a file that
cannot be written is reported once per failure on stderr by
:meth:`logging.Handler.handleError` and the line is lost; the server goes
on.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import logging
import logging.handlers
import os
import queue
import re
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

__all__ = ["QUEUE_SIZE", "DailyFileHandler", "LogFileWriter", "dropped_records"]

QUEUE_SIZE = 10_000  # lines waiting for the writer thread; beyond, new ones are dropped
STOP_TIMEOUT = 10.0  # seconds stop() waits for the thread to write what is queued

_dropped = itertools.count()  # next() is atomic under the GIL: safe from any thread
_dropped_total = 0


def dropped_records() -> int:
    """Log lines dropped so far in this process because the file queue was full."""
    return _dropped_total


def _count_drop() -> int:
    global _dropped_total
    _dropped_total = next(_dropped) + 1
    return _dropped_total


def utc_today() -> date:
    return datetime.now(UTC).date()


class DailyFileHandler(logging.Handler):
    """Appends already-rendered lines to ``{prefix}-{YYYY-MM-DD}.log`` for
    the current UTC day (``today()``, injectable for tests).

    On the first line of a new day, the previous day's file is closed and
    gzipped (``.log.gz``, written beside it and renamed into place, then the
    plain file removed) and files older than ``max_files`` days are deleted.
    At start, plain files of earlier days (left by a stop or a crash) are
    compressed the same way. Meant to run on the writer thread only: not
    safe to share with the event loop.
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        *,
        max_files: int,
        level: int = logging.NOTSET,
        today: Callable[[], date] = utc_today,
    ) -> None:
        super().__init__(level)
        if max_files < 1:
            raise ValueError("max_files must be at least 1")
        self.directory = directory
        self.prefix = prefix
        self.max_files = max_files
        self._today = today
        self._day: date | None = None
        self._stream: IO[str] | None = None
        self._pattern = re.compile(rf"^{re.escape(prefix)}-(\d{{4}}-\d{{2}}-\d{{2}})\.log(\.gz)?$")
        self.setFormatter(logging.Formatter("%(message)s"))

    def path_for(self, day: date) -> Path:
        return self.directory / f"{self.prefix}-{day.isoformat()}.log"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            day = self._today()
            if day != self._day or self._stream is None:
                self._roll(day)
            assert self._stream is not None
            self._stream.write(line + "\n")
            self._stream.flush()
        except Exception:
            self.handleError(record)

    def check_day(self) -> None:
        """Roll over if the day changed since the last line: the error file
        of a day without errors is compressed on time too."""
        if self._stream is not None and self._today() != self._day:
            self.acquire()
            try:
                self._roll(self._today())
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": "log file rollover"}))
            finally:
                self.release()

    def close(self) -> None:
        self.acquire()
        try:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        finally:
            self.release()
        super().close()

    def _roll(self, day: date) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._day = day
        self._stream = self.path_for(day).open("a", encoding="utf-8")
        self._compress_and_prune(day)

    def _compress_and_prune(self, today: date) -> None:
        """gzip every plain file of an earlier day; delete the days beyond
        ``max_files`` (today counts as one)."""
        oldest_kept = today - timedelta(days=self.max_files - 1)
        for path in sorted(self.directory.iterdir()):
            match = self._pattern.match(path.name)
            if match is None:
                continue
            try:
                day = date.fromisoformat(match.group(1))
            except ValueError:
                continue
            if day < oldest_kept:
                path.unlink(missing_ok=True)
            elif day < today and match.group(2) is None:
                _gzip(path)


def _gzip(path: Path) -> None:
    """``x.log`` -> ``x.log.gz``, crash-safe: the plain file goes only once
    the compressed one is complete and renamed into place."""
    target = path.with_name(path.name + ".gz")
    partial = path.with_name(path.name + ".gz.tmp")
    with path.open("rb") as src, gzip.open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
    os.replace(partial, target)
    path.unlink()


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Renders a record on the logging thread (``prepare``) and queues the
    line without ever waiting: a full queue drops it and counts the drop."""

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            _count_drop()


class _Listener(logging.handlers.QueueListener):
    """The writer thread. Before the next line after some were dropped, it
    writes one ``log_records_dropped`` line saying how many."""

    def __init__(
        self,
        q: queue.Queue[Any],
        notice: Callable[[int], logging.LogRecord],
        *handlers: logging.Handler,
    ) -> None:
        super().__init__(q, *handlers, respect_handler_level=True)
        self._queue = q
        self._notice = notice
        self._reported = dropped_records()

    def handle(self, record: logging.LogRecord) -> None:
        for handler in self.handlers:
            if isinstance(handler, DailyFileHandler):
                handler.check_day()
        dropped = dropped_records()
        if dropped != self._reported:
            super().handle(self._notice(dropped - self._reported))
            self._reported = dropped
        super().handle(record)

    def enqueue_sentinel(self) -> None:
        # The stdlib uses put_nowait, which fails on a full queue; wait for
        # room instead (the thread is draining it), bounded by STOP_TIMEOUT.
        self._queue.put(None, timeout=STOP_TIMEOUT)  # None: the stdlib's sentinel


class LogFileWriter:
    """The file side of the logging pipeline: a queue handler to put on the
    root logger (:attr:`handler`) and the thread that writes its lines to
    :class:`DailyFileHandler` files.

    ``formatter`` renders records to JSON lines (on the logging thread);
    ``notice(n)`` makes the record written when ``n`` lines were dropped.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_files: int,
        formatter: logging.Formatter,
        notice: Callable[[int], logging.LogRecord],
        queue_size: int = QUEUE_SIZE,
        today: Callable[[], date] = utc_today,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise PermissionError(f"{directory} is not writable")
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.handler = _DroppingQueueHandler(self.queue)
        self.handler.setFormatter(formatter)
        self.files = [
            DailyFileHandler(directory, "replaywire", max_files=max_files, today=today),
            DailyFileHandler(
                directory,
                "replaywire-error",
                max_files=max_files,
                level=logging.ERROR,
                today=today,
            ),
        ]
        self._listener = _Listener(self.queue, notice, *self.files)
        self._stopped = threading.Event()

    def start(self) -> None:
        self._listener.start()

    def flush(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Wait until every queued line is written (tests, shutdown); False
        if that took longer than ``timeout``."""
        q = self.queue
        with q.all_tasks_done:
            return q.all_tasks_done.wait_for(lambda: q.unfinished_tasks == 0, timeout)

    def stop(self) -> None:
        """Write what is queued, close the files, end the thread. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        # queue.Full: the thread is stuck on the disk; it is a daemon and
        # dies with the process.
        with contextlib.suppress(queue.Full):
            self._listener.stop()
        for handler in self.files:
            handler.close()
        self.handler.close()
