"""Structured logging: one structlog pipeline for our code and for libraries.

Every record, whether it comes from ``get_logger(__name__).info("event_name",
key=value)`` or from a library's plain ``logging.getLogger(...).warning(...)``,
leaves through a single handler on the root logger and carries the same
fields: ``timestamp`` (ISO-8601, UTC), ``level``, ``event``, ``logger`` and
``instance``, plus whatever is bound in :mod:`structlog.contextvars`.

The server binds per-connection context with
``structlog.contextvars.bind_contextvars(conn_id=...)``. Each trio task runs
in its own copy of the context, so what one connection binds never shows up in
another connection's lines.

Output is JSON lines on stdout when stdout is not a terminal (or
``log_format="json"``), and structlog's console renderer on a terminal (or
``log_format="console"``). With ``log_dir`` set, every line also goes, as
JSON whatever the stdout format, to daily files written by a thread of their
own (:mod:`replaywire.observability.logfiles`). A record with an exception
carries ``error_type`` and ``error_message`` fields besides the formatted
``exception`` traceback, so failures can be grouped with ``jq`` without
parsing tracebacks.

Resource handling: :func:`configure_logging` installs its handlers on the
root logger and replaces the ones it installed before, so calling it again
(tests, reloads) never duplicates lines. The stdout handler owns no file: it
writes to whatever ``sys.stdout`` is when a line is emitted, on the thread
that logs. The file writer owns its thread and files; :func:`shutdown_logging`
(also run at exit) writes what it still holds and closes them.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from replaywire.config import LOG_FORMATS, Config, ConfigError
from replaywire.observability.logfiles import LogFileWriter, utc_today

__all__ = ["configure_logging", "flush_log_files", "get_logger", "shutdown_logging"]

_HANDLER_NAME = "replaywire"
_FILE_HANDLER_NAME = "replaywire-files"
_file_writer: LogFileWriter | None = None

# The chain that every record goes through before rendering, whether it was
# made by structlog or by the stdlib. It does not depend on the Config;
# everything that does lives in the handler's formatter.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """A stream handler bound to the *current* ``sys.stdout``.

    A plain ``StreamHandler(sys.stdout)`` keeps the stream object it was given;
    when that was a test's captured stdout, later lines go to a closed file.
    Looking ``sys.stdout`` up on every emit costs one attribute read.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always follow sys.stdout


def _add_instance(instance: str) -> Processor:
    def add_instance(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("instance", instance)
        return event_dict

    return add_instance


_LEADING = ("timestamp", "level", "event", "logger", "instance")


def _add_error_fields(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """``error_type`` and ``error_message`` of the exception being logged
    (``log.exception(...)``, ``exc_info=...``), searchable fields beside the
    traceback text that ``format_exc_info`` renders into ``exception``."""
    exc_info = event_dict.get("exc_info")
    if not exc_info:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        kind = exc_info[0]
        name = kind.__qualname__
        if kind.__module__ not in ("builtins", "__main__"):
            name = f"{kind.__module__}.{name}"
        event_dict.setdefault("error_type", name)
        event_dict.setdefault("error_message", str(exc_info[1]))
        event_dict["exc_info"] = exc_info
    return event_dict


def _leading_keys_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The fixed fields first, so a JSON line reads the same way every time."""
    ordered = {k: event_dict.pop(k) for k in _LEADING if k in event_dict}
    ordered.update(event_dict)
    return ordered


def _use_json(log_format: str, stream: TextIO) -> bool:
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            "log_format", f"LOG_FORMAT={log_format!r}: expected one of {', '.join(LOG_FORMATS)}"
        )
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return log_format == "json"


def _level(name: str) -> int:
    level = logging.getLevelNamesMapping().get(name.strip().upper())
    if level is None:
        raise ConfigError(
            "log_level", f"LOG_LEVEL={name!r}: expected debug, info, warning or error"
        )
    return level


def _formatter(instance: str, *, as_json: bool) -> structlog.stdlib.ProcessorFormatter:
    final: list[Processor]
    if as_json:
        # Tracebacks as one string field, so a line stays one JSON object.
        final = [
            _add_error_fields,
            structlog.processors.format_exc_info,
            _leading_keys_first,
            structlog.processors.JSONRenderer(),
        ]
    else:
        # The console renderer formats exceptions itself (and prettier).
        final = [_add_error_fields, structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
    return structlog.stdlib.ProcessorFormatter(
        # Records from the stdlib have not been through _SHARED yet.
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _add_instance(instance),
            *final,
        ],
    )


def _dropped_notice(dropped: int) -> logging.LogRecord:
    """The line the file writer writes after dropping ``dropped`` lines."""
    record = logging.makeLogRecord(
        {
            "name": "replaywire.logging",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "log_records_dropped",
            "dropped": dropped,
        }
    )
    return record


def configure_logging(config: Config, *, today: Callable[[], date] = utc_today) -> None:
    """Route structlog and stdlib logging through one pipeline: stdout, and
    the daily files in ``config.log_dir`` if set.

    Safe to call more than once: the handlers installed by an earlier call
    are replaced (its file writer stopped after writing what it held), other
    handlers on the root logger (pytest's, say) are left alone. Raises
    :class:`~replaywire.config.ConfigError` for an unknown ``log_level`` or
    ``log_format``, or a ``log_dir`` that cannot be created or written,
    before changing anything. ``today`` is the date of the file lines go to
    (tests pass a fake clock).
    """
    global _file_writer
    level = _level(config.log_level)
    as_json = _use_json(config.log_format, sys.stdout)
    instance = instance_name(config)

    handler = _StdoutHandler()
    handler.setFormatter(_formatter(instance, as_json=as_json))
    handler.set_name(_HANDLER_NAME)

    writer: LogFileWriter | None = None
    if config.log_dir:
        json_formatter = _formatter(instance, as_json=True)

        def notice(dropped: int) -> logging.LogRecord:
            record = _dropped_notice(dropped)
            record.msg = json_formatter.format(record)
            return record

        try:
            writer = LogFileWriter(
                Path(config.log_dir),
                max_files=config.log_max_files,
                formatter=json_formatter,
                notice=notice,
                today=today,
            )
        except OSError as exc:
            raise ConfigError(
                "log_dir", f"LOG_DIR={config.log_dir!r}: cannot write log files there: {exc}"
            ) from exc
        writer.handler.set_name(_FILE_HANDLER_NAME)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() in (_HANDLER_NAME, _FILE_HANDLER_NAME)]:
        root.removeHandler(old)
        old.close()
    if _file_writer is not None:
        _file_writer.stop()
        _file_writer = None
    root.addHandler(handler)
    if writer is not None:
        writer.start()
        root.addHandler(writer.handler)
        _file_writer = writer
    root.setLevel(level)

    structlog.configure(
        processors=[
            # Drop below-level calls before any work is done on them.
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger used before this call (a test server started
        # without the CLI, say) would keep the old configuration for good.
        # Rebuilding costs microseconds per line, and we log per connection
        # and per session, never per event.
        cache_logger_on_first_use=False,
    )


def flush_log_files(timeout: float = 10.0) -> bool:
    """Wait until the file writer has written every queued line; True at
    once without ``log_dir``. For tests and for a clean exit."""
    writer = _file_writer
    return writer is None or writer.flush(timeout)


@atexit.register
def shutdown_logging() -> None:
    """Write what the file writer still holds, close the log files and stop
    its thread (stdout logging goes on). Idempotent; run at exit too."""
    global _file_writer
    writer, _file_writer = _file_writer, None
    if writer is None:
        return
    root = logging.getLogger()
    if writer.handler in root.handlers:
        root.removeHandler(writer.handler)
    writer.stop()


def instance_name(config: Config) -> str:
    """This instance's name in logs, metrics and Redis keys: ``INSTANCE_ID``,
    else ``host-pid``."""
    return config.instance_id or f"{socket.gethostname()}-{os.getpid()}"


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger whose lines carry ``logger=name``; use ``__name__``.

    May be called at import time, before :func:`configure_logging`: the
    returned proxy picks the configuration up on first use.
    """
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
