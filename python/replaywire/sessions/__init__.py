"""Live sessions: their lifecycle, their in-memory tail (Rust ring
buffers), history reads, and the signal that wakes their viewers."""

from .hub import Hub
from .live import LiveSession
from .seqs import SeqWindow

__all__ = ["Hub", "LiveSession", "SeqWindow"]
