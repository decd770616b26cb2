"""Departure delays by the weather at departure: rain or snow, low visibility, strong wind, or clear."""

import polars as pl

from symphony_operators import Operator

DELAYED_MINUTES = 15.0


class WeatherDelays(Operator):
    """One row per weather condition: flights, mean departure delay, share delayed 15 minutes or more.

    Each flight counts under one condition, checked in this order: no weather record, rain or snow
    (precipitation > 0), low visibility (< 3 miles), strong wind (>= 20 mph), clear.
    """

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        condition = (
            pl.when(pl.col("visib").is_null())
            .then(pl.lit("no weather record"))
            .when(pl.col("precip") > 0)
            .then(pl.lit("rain or snow"))
            .when(pl.col("visib") < 3)
            .then(pl.lit("low visibility"))
            .when(pl.col("wind_speed") >= 20)
            .then(pl.lit("strong wind"))
            .otherwise(pl.lit("clear"))
        )
        return (
            frame.with_columns(condition.alias("condition"))
            .group_by("condition")
            .agg(
                pl.len().alias("flights"),
                pl.col("dep_delay").mean().alias("mean_dep_delay"),
                (pl.col("dep_delay") >= DELAYED_MINUTES).mean().alias("delayed_share"),
            )
            .sort("mean_dep_delay", descending=True)
        )
