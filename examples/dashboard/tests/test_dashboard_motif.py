"""The dashboard motif's one method, outside a host: no results yet, then the file the host wrote."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from symphony_example_dashboard import Dashboard

from symphony_motifs import CallRefused, Context

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MANIFEST = tomllib.loads(
    (Path(__file__).parents[1] / "src" / "symphony_example_dashboard" / "symphony.toml").read_text()
)


def _active(tmp_path: Path) -> Dashboard:
    motif = Dashboard()
    motif.activate(
        Context(
            id="examples.dashboard",
            version="0.1.0",
            manifest=MANIFEST,
            config=None,
            data_dir=tmp_path,
            cache_dir=tmp_path,
            logger=logging.getLogger("symphony.ext.examples.dashboard"),
        )
    )
    return motif


def test_the_page_gets_nothing_before_the_host_writes_and_the_results_after(tmp_path):
    motif = _active(tmp_path)
    before = motif.invoke("results")
    (tmp_path / "results.json").write_text(json.dumps({"digits": {"accuracy": 0.96}}))

    assert before == {"available": False, "data": None}
    assert motif.invoke("results") == {"available": True, "data": {"digits": {"accuracy": 0.96}}}


def test_the_page_reaches_only_the_declared_method(tmp_path):
    with pytest.raises(CallRefused, match="'activate' is not exposed"):
        _active(tmp_path).invoke("activate")
