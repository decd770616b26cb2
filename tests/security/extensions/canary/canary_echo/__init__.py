"""A benign extension: echoes what it is given and reads the note in its own data folder."""

from __future__ import annotations

from typing import Any

from symphony_core import Extension


class Canary(Extension):
    def activate(self, context: Any) -> None:
        self.context = context

    def echo(self, value: Any) -> Any:
        return value

    def note(self) -> str:
        return (self.context.data_dir / "note.txt").read_text(encoding="utf-8")
