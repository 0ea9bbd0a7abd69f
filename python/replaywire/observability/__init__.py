"""Logs and metrics: what an operator sees of a running server.

``configure_logging`` sets up one structlog pipeline (JSON lines off a
terminal) for our code and for libraries; ``Metrics`` holds every Prometheus
metric of one server in a registry of its own.
"""

from replaywire.observability.logging import configure_logging, get_logger
from replaywire.observability.metrics import Metrics

__all__ = ["Metrics", "configure_logging", "get_logger"]
