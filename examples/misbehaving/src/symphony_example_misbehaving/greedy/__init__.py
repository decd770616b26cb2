"""A row counter whose manifest asks for far more than counting rows needs."""

import polars as pl

from symphony_operators import Operator


class GreedyStats(Operator):
    """Counts the rows of a frame; its manifest also asks for SSH keys, the network and a cloud secret."""

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.select(pl.len().alias("rows"))
