"""Mean departure and arrival delay per route."""

import polars as pl

from symphony_operators import Operator


class RouteDelays(Operator):
    """One row per (origin, dest) with the flight count and the mean delays, most delayed first."""

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return (
            frame.group_by("origin", "dest")
            .agg(
                pl.len().alias("flights"),
                pl.col("dep_delay").mean().alias("mean_dep_delay"),
                pl.col("arr_delay").mean().alias("mean_arr_delay"),
            )
            .sort("mean_arr_delay", descending=True, nulls_last=True)
        )
