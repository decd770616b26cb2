"""``symphony dev``: how long a save takes to reach a running operator and an open motif page.

Both projects are made by ``symphony new`` and run by a `DevSession` watching in a thread, as
``symphony dev`` runs them (isolated workers, the watcher of the core's ``dev`` extra):

    operator reload   a new ``apply`` written to the package, until the dev host's call answers with it
                      (the watcher's latency, the quick checks, old workers stopped, new ones started);
                      baseline: a fresh ``Host`` started on the same project and its first call, the
                      least a restart without ``symphony dev`` costs
    motif refresh     a new ``<title>`` written to the page, until Chromium shows the reloaded page with
                      it (watcher, event to the page, the page fetched again with its assets); baseline:
                      the same page reloaded by the browser itself (``page.reload()``) until it shows
                      its title again

Samples are interleaved with their baselines. Budgets (docs/architecture.md): an operator reloads in
at most 1 s, a motif's page in at most 0.5 s.

    python tools/bench/dev.py [--quick] [--json FILE] [--check] [--repeat N]
"""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import Report, Stat, options, ratio

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
OPERATOR_BUDGET_MS = 1000.0
PAGE_BUDGET_MS = 500.0
TIMEOUT = 30.0


def new_project(kind: str, name: str, folder: Path) -> Path:
    symphony = Path(sys.executable).with_name("symphony")
    subprocess.run(
        [symphony, "new", kind, name, "--dir", folder, "--no-input", "--no-git"],
        check=True,
        capture_output=True,
    )
    return folder


class Watching:
    """A `DevSession` started here and watching in a thread."""

    def __init__(self, folder: Path, home: Path) -> None:
        from symphony_core._authoring._dev import DevProject, DevSession

        self.events: queue.Queue[Any] = queue.Queue()
        self.session = DevSession(DevProject.read(folder), home=home, report=self.events.put)
        self.stop = threading.Event()

    def __enter__(self) -> Watching:
        self.session.start()
        self.thread = threading.Thread(target=self.session.run, args=(self.stop,), daemon=True)
        self.thread.start()
        time.sleep(0.5)  # the watcher starts in its thread
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.session.close()

    def wait(self, kind: type[Any]) -> Any:
        deadline = time.monotonic() + TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            event = self.events.get(timeout=left)
            if isinstance(event, kind):
                return event
            if type(event).__name__ in ("Failed", "Rejected"):
                raise RuntimeError(f"the save was not applied: {event}")
        raise RuntimeError(f"no {kind.__name__} within {TIMEOUT:g} s")


def bench_operator(root: Path, repeat: int) -> dict[str, list[float]]:
    import polars as pl

    from symphony_core import Host
    from symphony_core._authoring._dev import Reloaded

    project = new_project("operator", "bench-totals", root / "totals")
    code = project / "src" / "bench_totals" / "__init__.py"
    original = code.read_text()
    frame = pl.LazyFrame({"key": ["x", "y"], "value": [1.0, 2.0]})
    samples: dict[str, list[float]] = {"reload": [], "reported": [], "baseline": []}
    with Watching(project, root / "home") as dev:
        host = dev.session.host
        assert host is not None
        site = str(dev.session.site)
        for round_ in range(repeat + 1):
            column = f"c{round_}"
            while not dev.events.empty():
                dev.events.get_nowait()
            start = time.perf_counter()
            code.write_text(original.replace('alias("rows")', f'alias("rows"), pl.len().alias("{column}")'))
            # a restart the previous save set off may still report, with the previous code: wait on
            for _ in range(3):
                reloaded = dev.wait(Reloaded)
                columns = host.call("bench.totals", "apply", frame).collect().columns
                if column in columns:
                    break
            else:
                raise RuntimeError(f"the reloaded operator answered {columns}, not with {column!r}")
            elapsed = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            with Host(
                root / "baseline-home", path=[site, str(project / "src"), *sys.path], isolation="isolated"
            ) as fresh:
                fresh.start("bench.totals")
                fresh.call("bench.totals", "apply", frame).collect()
            baseline = (time.perf_counter() - start) * 1000
            if round_:  # round 0 warms the page cache and the interpreter up
                samples["reload"].append(elapsed)
                samples["reported"].append(reloaded.ms)
                samples["baseline"].append(baseline)
    return samples


def bench_page(root: Path, repeat: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    project = new_project("motif", "bench-board", root / "board")
    page_file = project / "src" / "bench_board" / "web" / "index.html"
    original = page_file.read_text()
    samples: dict[str, list[float]] = {"refresh": [], "baseline": []}
    with Watching(project, root / "home") as dev, sync_playwright() as playwright:
        url = dev.session.views["bench.board"].url
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("window.symphony !== undefined")
            for round_ in range(repeat + 1):
                title = f"Board {round_}"
                page.evaluate("window.__old = true")
                start = time.perf_counter()
                page_file.write_text(original.replace("<title>Board</title>", f"<title>{title}</title>"))
                page.wait_for_function(
                    f"() => window.__old === undefined && document.title === {title!r}",
                    timeout=TIMEOUT * 1000,
                )
                refresh = (time.perf_counter() - start) * 1000
                page.wait_for_function("window.symphony !== undefined")
                time.sleep(0.1)  # its event stream is open again before the next save
                page.evaluate("window.__old = true")
                start = time.perf_counter()
                page.reload(wait_until="commit")
                page.wait_for_function(
                    f"() => window.__old === undefined && document.title === {title!r}",
                    timeout=TIMEOUT * 1000,
                )
                baseline = (time.perf_counter() - start) * 1000
                page.wait_for_function("window.symphony !== undefined")
                time.sleep(0.1)
                if round_:
                    samples["refresh"].append(refresh)
                    samples["baseline"].append(baseline)
        finally:
            browser.close()
    return samples


def main() -> int:
    parser = options(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    report = Report("dev", args)
    repeat = args.repeat or (3 if args.quick else 10)
    report.note(
        f"dev: {repeat} saves each, interleaved with their baselines; Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="symphony-bench-dev-") as tmp:
        operator = bench_operator(Path(tmp) / "operator", repeat)
        page = bench_page(Path(tmp) / "motif", repeat)
    stats = {
        "operator.reload_ms": Stat(tuple(operator["reload"])),
        "operator.reported_ms": Stat(tuple(operator["reported"])),
        "operator.fresh_host_ms": Stat(tuple(operator["baseline"])),
        "motif.refresh_ms": Stat(tuple(page["refresh"])),
        "motif.browser_reload_ms": Stat(tuple(page["baseline"])),
    }
    for key, stat in stats.items():
        report.figure(key, stat)
    report.table(
        "A save until it answers, ms (median, min)",
        ("what", "dev", "baseline", "vs baseline"),
        [
            (
                "operator: save to a call answered by the new code",
                stats["operator.reload_ms"],
                stats["operator.fresh_host_ms"],
                ratio(stats["operator.reload_ms"], stats["operator.fresh_host_ms"]),
            ),
            ("operator: restart as dev reports it", stats["operator.reported_ms"], "-", "-"),
            (
                "motif: save to the page reloaded with it",
                stats["motif.refresh_ms"],
                stats["motif.browser_reload_ms"],
                ratio(stats["motif.refresh_ms"], stats["motif.browser_reload_ms"]),
            ),
        ],
    )
    report.note(
        "baselines: a fresh Host started on the operator and its first call; the browser reloading the page"
    )
    report.budget(
        "operator reload, save to new answer", stats["operator.reload_ms"].median, OPERATOR_BUDGET_MS, "ms"
    )
    report.budget(
        "motif page refresh, save to reloaded page", stats["motif.refresh_ms"].median, PAGE_BUDGET_MS, "ms"
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
