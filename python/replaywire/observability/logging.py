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
``log_format="console"``).

Resource handling: :func:`configure_logging` installs one handler on the root
logger and replaces the one it installed before, so calling it again (tests,
reloads) never duplicates lines. The handler owns no file: it writes to
whatever ``sys.stdout`` is when a line is emitted.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from replaywire.config import Config, ConfigError

__all__ = ["configure_logging", "get_logger"]

_FORMATS = ("auto", "json", "console")
_HANDLER_NAME = "replaywire"

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


def _leading_keys_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The fixed fields first, so a JSON line reads the same way every time."""
    ordered = {k: event_dict.pop(k) for k in _LEADING if k in event_dict}
    ordered.update(event_dict)
    return ordered


def _use_json(log_format: str, stream: TextIO) -> bool:
    if log_format not in _FORMATS:
        raise ConfigError(f"LOG_FORMAT={log_format!r}: expected one of {', '.join(_FORMATS)}")
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return log_format == "json"


def _level(name: str) -> int:
    level = logging.getLevelNamesMapping().get(name.strip().upper())
    if level is None:
        raise ConfigError(f"LOG_LEVEL={name!r}: expected debug, info, warning or error")
    return level


def configure_logging(config: Config) -> None:
    """Route structlog and stdlib logging through one pipeline on stdout.

    Safe to call more than once: the handler installed by an earlier call is
    replaced, other handlers on the root logger (pytest's, say) are left
    alone. Raises :class:`~replaywire.config.ConfigError` for an unknown
    ``log_level`` or ``log_format`` before changing anything.
    """
    level = _level(config.log_level)
    as_json = _use_json(config.log_format, sys.stdout)
    instance = instance_name(config)

    final: list[Processor]
    if as_json:
        # Tracebacks as one string field, so a line stays one JSON object.
        final = [
            structlog.processors.format_exc_info,
            _leading_keys_first,
            structlog.processors.JSONRenderer(),
        ]
    else:
        # The console renderer formats exceptions itself (and prettier).
        final = [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]

    formatter = structlog.stdlib.ProcessorFormatter(
        # Records from the stdlib have not been through _SHARED yet.
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _add_instance(instance),
            *final,
        ],
    )
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
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
