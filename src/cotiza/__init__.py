"""cotiza: real-time market quotes and ratios for the Argentine market."""

from __future__ import annotations

__version__ = "0.1.0"
