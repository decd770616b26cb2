"""tools/bench/report.py: the docs' budget tables come from committed runs, and a ratio that regressed
beyond the committed runs fails the check (judged on the better of two runs)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "tools" / "bench" / "report.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_report", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(module, "PAGE", tmp_path / "benchmarks.md")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    return module


def _run(
    mode: str, date: str, load: float, budgets: list[tuple[str, float, float, str, bool]]
) -> dict[str, Any]:
    return {
        "benchmark": "discovery",
        "mode": mode,
        "date": date,
        "commit": "abc1234",
        "machine": {"cpu": "Test CPU", "cpus": 2, "load_at_start": load},
        "budgets": [
            {
                "budget": name,
                "value": value,
                "limit": limit,
                "unit": unit,
                "at_least": at_least,
                "ok": value >= limit if at_least else value <= limit,
            }
            for name, value, limit, unit, at_least in budgets
        ],
    }


def _commit(report: ModuleType, name: str, runs: list[dict[str, Any]]) -> None:
    folder = report.RESULTS / name
    folder.mkdir(parents=True)
    for n, run in enumerate(runs):
        (folder / f"2026120{n}-{n}.json").write_text(json.dumps(run), encoding="utf-8")


def test_the_table_gives_median_range_and_how_many_runs_met_each_budget(report: ModuleType) -> None:
    runs = [
        _run(
            "quick",
            "2026-12-06T10:00:00+00:00",
            0.4,
            [("warm", 3.0, 5.0, "ms", False), ("speed", 0.95, 0.9, "x", True)],
        ),
        _run(
            "quick",
            "2026-12-06T11:00:00+00:00",
            2.5,
            [("warm", 6.0, 5.0, "ms", False), ("speed", 0.85, 0.9, "x", True)],
        ),
        _run(
            "quick",
            "2026-12-06T12:00:00+00:00",
            0.3,
            [("warm", 4.0, 5.0, "ms", False), ("speed", 0.92, 0.9, "x", True)],
        ),
    ]

    text = report.table(runs)

    assert "| warm | 4 (3-6) ms | ≤ 5 ms | **met in 2 of 3 runs** |" in text
    assert "| speed | 0.920 (0.850-0.950) x | ≥ 0.900 x | **met in 2 of 3 runs** |" in text
    assert "From 3 quick run(s) on Test CPU: 2026-12-06 10:00 UTC, commit abc1234, 2 CPUs, load 0.4;" in text


def test_the_page_is_regenerated_between_its_markers_and_check_says_when_it_is_stale(
    report: ModuleType,
) -> None:
    _commit(
        report,
        "discovery",
        [_run("full", "2026-12-06T10:00:00+00:00", 0.2, [("warm", 2.0, 5.0, "ms", False)])],
    )
    report.PAGE.write_text(
        "# Benchmarks\n\nProse stays.\n\n<!-- budgets:discovery -->\nold table\n<!-- /budgets:discovery -->\n\nMore prose.\n",
        encoding="utf-8",
    )

    assert report.main(["docs", "--check"]) == 1
    assert report.main(["docs"]) == 0
    page = report.PAGE.read_text(encoding="utf-8")
    assert report.main(["docs", "--check"]) == 0

    assert "old table" not in page
    assert "| warm | 2 ms | ≤ 5 ms | met |" in page
    assert page.startswith("# Benchmarks\n\nProse stays.\n")
    assert page.endswith("\n\nMore prose.\n")


def test_a_ratio_is_judged_against_the_worst_committed_run_in_its_direction(report: ModuleType) -> None:
    committed = [
        _run("quick", "d1", 0.1, [("cold / scan", 4.0, 1.0, "x", False), ("speed", 0.9, 0.9, "x", True)]),
        _run("quick", "d2", 0.1, [("cold / scan", 5.0, 1.0, "x", False), ("speed", 0.8, 0.9, "x", True)]),
        _run("full", "d3", 0.1, [("cold / scan", 1.0, 1.0, "x", False)]),  # another mode: not compared
    ]
    within = _run(
        "quick", "now", 0.1, [("cold / scan", 6.5, 1.0, "x", False), ("speed", 0.6, 0.9, "x", True)]
    )
    worse = _run("quick", "now", 0.1, [("cold / scan", 7.0, 1.0, "x", False), ("speed", 0.5, 0.9, "x", True)])
    timings = _run("quick", "now", 0.1, [("warm", 90.0, 5.0, "ms", False)])  # not a ratio: never judged here

    assert report.regressions(within, committed, 0.35) == []
    assert report.regressions(worse, committed, 0.35) == [
        "cold / scan: 7x against 5x at worst in the committed runs",
        "speed: 0.500x against 0.800x at worst in the committed runs",
    ]
    assert report.regressions(timings, committed, 0.35) == []


PROBE = """
import json, os, sys
from pathlib import Path

def busy():
    found = 0
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\\0")
        except OSError:
            continue
        found += b"while True: pass" in command
    return found

out = Path(sys.argv[sys.argv.index("--json") + 1])
out.write_text(json.dumps({"busy": busy(), "told": os.environ.get("SYMPHONY_BENCH_BUSY")}))
"""


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="counts processes through /proc")
def test_a_loaded_run_has_a_busy_process_beside_it_for_its_whole_run_and_none_after(
    report: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "HERE", tmp_path)
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")

    assert report._run("probe", tmp_path / "quiet.json", quick=True) == 0
    assert report._run("probe-loaded", tmp_path / "loaded.json", quick=True) == 0

    assert json.loads((tmp_path / "quiet.json").read_text()) == {"busy": 0, "told": "0"}
    assert json.loads((tmp_path / "loaded.json").read_text()) == {
        "busy": report.BUSY,
        "told": str(report.BUSY),
    }
    assert report._run("probe", tmp_path / "after.json", quick=True) == 0
    assert json.loads((tmp_path / "after.json").read_text())["busy"] == 0
    run = _run("quick", "2026-12-07T08:00:00+00:00", 1.0, [])
    run["machine"]["busy_processes"] = 1
    assert report._source(run).endswith(", load 1.0, 1 busy process beside it")
