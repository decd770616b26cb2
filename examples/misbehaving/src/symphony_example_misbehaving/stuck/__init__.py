"""An operator whose activation never finishes."""

import threading

import polars as pl

from symphony_operators import Context, Operator


class Stuck(Operator):
    """Waits forever in ``activate``, as an extension does when it waits for a server that never answers."""

    def activate(self, context: Context) -> None:
        super().activate(context)
        threading.Event().wait()

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame
