"""Live sessions: their lifecycle, their in-memory tail (Rust ring
buffers), history reads, and the signal that wakes their viewers."""

from .hub import Hub
from .live import LiveSession

__all__ = ["Hub", "LiveSession"]
