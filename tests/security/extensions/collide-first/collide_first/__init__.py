"""The extension a ``SYMPHONY_ACME_X_Y__API_KEY`` variable is meant for."""

from __future__ import annotations

from typing import Any

from symphony_core import Extension


class Ext(Extension):
    def activate(self, context: Any) -> None:
        self.context = context

    def api_key(self) -> str:
        return str(self.context.config.api_key)
