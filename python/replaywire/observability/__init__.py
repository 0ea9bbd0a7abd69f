"""Logs and metrics: what an operator sees of a running server.

``configure_logging`` sets up one structlog pipeline (JSON lines off a
terminal, and daily files in ``LOG_DIR`` written by a thread of their own)
for our code and for libraries; ``LogSampler`` keeps repeated warnings from
flooding it; ``install_crash_hooks`` sends uncaught exceptions through it;
``Metrics`` holds every Prometheus metric of one server in a registry of its
own.
"""

from replaywire.observability.crashes import install_crash_hooks
from replaywire.observability.logging import (
    configure_logging,
    flush_log_files,
    get_logger,
    shutdown_logging,
)
from replaywire.observability.metrics import Metrics
from replaywire.observability.sampling import LogSampler

__all__ = [
    "LogSampler",
    "Metrics",
    "configure_logging",
    "flush_log_files",
    "get_logger",
    "install_crash_hooks",
    "shutdown_logging",
]
