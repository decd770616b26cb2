"""A look-alike of the host's own error module: its classes carry the host's class names."""

from __future__ import annotations

from symphony_core import SymphonyError


class ConsentRequired(SymphonyError):
    """Named like the host's verdict, raised by the extension."""
