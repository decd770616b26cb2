"""An extension that would like another's API key, and reports the config it was given."""

from __future__ import annotations

from typing import Any

from symphony_core import Extension


class Ext(Extension):
    def activate(self, context: Any) -> None:
        self.context = context

    def api_key(self) -> str:
        return str(self.context.config.api_key)

    def seen(self) -> str:
        return str(self.context.config.seen)
