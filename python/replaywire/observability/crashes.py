"""Crashes reach the log as structured lines, with their traceback.

Without this, an exception nobody catches (in the main thread or in a
worker thread) would print a bare traceback on stderr, which a log pipeline
reading JSON lines on stdout would mangle or drop. With
:func:`install_crash_hooks`, ``sys.excepthook`` and ``threading.excepthook``
first log ``unhandled_exception`` / ``thread_crashed`` at CRITICAL (with
``error_type``, ``error_message`` and the ``exception`` traceback), then
call the hook they replaced, so nothing that printed before is lost.

Crashed trio tasks are not unhandled in this sense: trio propagates their
exception to the nursery. The server logs the ones that end a connection
(``connection_crashed``) or the server (``server_crashed``) where it
catches them (:mod:`replaywire.app`).

Resource handling: the hooks are process-wide; :func:`install_crash_hooks`
returns a function that restores the previous ones (tests).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from types import TracebackType

import structlog

__all__ = ["install_crash_hooks"]

log = structlog.stdlib.get_logger("replaywire.crash")


def install_crash_hooks() -> Callable[[], None]:
    """Log uncaught exceptions of the process and of threads; returns the
    undo."""
    previous_sys = sys.excepthook
    previous_thread = threading.excepthook

    def sys_hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            # If logging itself is broken, the stderr hook below still runs.
            with contextlib.suppress(Exception):
                log.critical("unhandled_exception", exc_info=(kind, value, tb))
        previous_sys(kind, value, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit and args.exc_value is not None:
            with contextlib.suppress(Exception):
                log.critical(
                    "thread_crashed",
                    thread=args.thread.name if args.thread is not None else None,
                    exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
                )
        previous_thread(args)

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook

    def restore() -> None:
        sys.excepthook = previous_sys
        threading.excepthook = previous_thread

    return restore
