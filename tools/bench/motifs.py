"""The marketplace view: time from request to first paint with 100 installed extensions, and page weight.

A temporary site folder holds N generated extension distributions (default 100; a third each instrument,
operator and motif) in the layout an installer leaves (dist-info with METADATA, RECORD, WHEEL,
entry_points.txt; the package with ``__init__.py`` and ``symphony.toml``). Each requests one or two
permissions and every other one names a config model; every ``__init__.py`` raises when imported, so
showing the view must not import any of them. A real ``Host`` (its own home) discovers them beside the
environment's own packages, and ``symphony_motifs.serve`` serves the marketplace view on 127.0.0.1.

The baseline is a minimal static page (one heading, no script) served by a ``MotifServer`` in the same
process, on the same machine, loaded by the same browser: Debian's Chromium driven by Playwright, one
fresh browser context per sample, the two pages interleaved round by round after one warm-up round.

    first paint     first-contentful-paint, from navigation start (the browser's own clock)
    view painted    the frame after the marketplace has rendered every extension's card (after its
                    ``overview`` call): what a person waits for
    overview call   the ``overview`` call as the page saw it (request to last byte)
    wall            ``page.goto`` until the page has painted (the view, for the marketplace), from Python

Page weight is what crossed the wire for one view (navigation plus every resource: HTML, bridge, script,
stylesheet, the ``overview`` JSON), headers included (``transferSize``), and the bodies alone.

    python tools/bench/motifs.py [--quick] [--json FILE] [--extensions N] [--repeat N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Report, Stat, options, ratio, write_distribution

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
KINDS = (
    ("instrument", "symphony.instruments", "symphony-instruments"),
    ("operator", "symphony.operators", "symphony-operators"),
    ("motif", "symphony.motifs", "symphony-motifs"),
)
# Records, in the page's own clock, when the marketplace marks itself ready and the frame after it.
MARK_READY = """
new MutationObserver((changes, observer) => {
  if (document.body && document.body.dataset.ready === "1") {
    observer.disconnect();
    window.__ready = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => { window.__painted = performance.now(); }));
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-ready"]});
"""
FIRST_PAINT = (
    "() => performance.getEntriesByType('paint').some((entry) => entry.name === 'first-contentful-paint')"
)
TIMINGS = """
() => {
  const paint = performance.getEntriesByType("paint").find((entry) => entry.name === "first-contentful-paint");
  const navigation = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const call = resources.find((entry) => entry.name.includes("/_symphony/call/overview"));
  const entries = [navigation, ...resources.filter((entry) => !entry.name.includes("/_symphony/events"))];
  return {
    fcp: paint ? paint.startTime : null,
    ready: window.__ready ?? null,
    painted: window.__painted ?? null,
    call: call ? call.responseEnd - call.startTime : null,
    transfer: entries.reduce((sum, entry) => sum + entry.transferSize, 0),
    body: entries.reduce((sum, entry) => sum + entry.encodedBodySize, 0),
    resources: entries.map((entry) => [entry.name.split("/").pop() || "(page)", entry.transferSize, entry.encodedBodySize]),
    cards: document.querySelectorAll("article.card").length,
  };
}
"""
BASELINE_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Baseline</title><link rel='icon' href='data:,'></head>"
    "<body><h1>A minimal static page</h1></body></html>"
)


def build_site(site: Path, count: int) -> list[str]:
    """Install ``count`` extension distributions into ``site``; returns their ids."""
    ids = []
    for n in range(count):
        kind, group, package = KINDS[n % len(KINDS)]
        name = f"bench-{kind}-{n:03d}"
        module = name.replace("-", "_")
        ext_id = f"bench.{kind}-{n:03d}"
        permissions = [
            f'[[permissions]]\ntype = "fs.read"\npaths = ["{{data}}/{n}/*.csv"]\nreason = "Read its own inputs"\n'
        ]
        if n % 2:
            permissions.append(
                f'[[permissions]]\ntype = "net.connect"\nhosts = ["api{n}.example.com:443"]\n'
                'reason = "Fetch reference data"\n'
            )
        manifest = (
            f'id = "{ext_id}"\nkind = "{kind}"\nname = "Bench {kind} {n}"\n'
            f'summary = "A generated {kind} for the marketplace benchmark."\ntargets = "{package}>=0.1,<0.2"\n'
            + (f'config = "{module}:Settings"\n' if n % 2 == 0 else "")
            + "\n"
            + "\n".join(permissions)
            + ('\n[contributes]\npage = "web/index.html"\n' if kind == "motif" else "")
        )
        write_distribution(
            site,
            name,
            "1.0.0",
            files={
                f"{module}/__init__.py": f"raise ImportError('{ext_id} must not be imported to be listed')\n",
                f"{module}/symphony.toml": manifest,
            },
            entry_points={group: {ext_id: f"{module}:Extension"}},
            requires=(f"{package}>=0.1,<0.2",),
        )
        ids.append(ext_id)
    return ids


def load(browser: Any, url: str, ready: str) -> dict[str, Any]:
    """One sample: a fresh context loads ``url`` until ``ready``; returns the page's timings and weight."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.add_init_script(MARK_READY)
        start = time.perf_counter_ns()
        page.goto(url, wait_until="load")
        page.wait_for_function(FIRST_PAINT, timeout=60_000)
        if ready:
            page.wait_for_selector(ready, timeout=60_000)
            page.wait_for_function("() => window.__painted !== undefined", timeout=60_000)
        wall = time.perf_counter_ns() - start
        sample: dict[str, Any] = page.evaluate(TIMINGS)
        sample["wall"] = wall / 1e6
        return sample
    finally:
        context.close()


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--extensions", type=int, default=100, help="generated extensions (default 100)")
    args = parser.parse_args()
    repeat = args.repeat or (6 if args.quick else 20)
    report = Report("motifs", args)
    report.note(
        f"motifs: the marketplace view with {args.extensions} installed extensions vs a minimal static page; "
        f"{repeat} samples each, interleaved; Chromium {CHROMIUM}; Python {sys.version.split()[0]}"
    )
    report.figure("extensions", args.extensions)

    from playwright.sync_api import sync_playwright

    from symphony_core import Host
    from symphony_motifs import Assets, MotifServer, serve

    samples: dict[str, list[dict[str, Any]]] = {"marketplace": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="symphony-bench-motifs-") as tmp:
        root = Path(tmp)
        build_site(root / "site", args.extensions)
        static = root / "baseline"
        (static / "web").mkdir(parents=True)
        (static / "web" / "index.html").write_text(BASELINE_PAGE, encoding="utf-8")
        assets = Assets.locate(
            "bench.baseline",
            "Baseline",
            {"contributes": {"page": "web/index.html"}},
            str(static / "symphony.toml"),
        )

        def refuse(method: str, arguments: Any) -> Any:
            raise AssertionError("the baseline page calls nothing")

        with (
            Host(root / "home", path=[str(root / "site"), *sys.path]) as host,
            serve(host) as marketplace,
            MotifServer(assets, refuse) as baseline,
            sync_playwright() as playwright,
        ):
            installed = len(host.discover())
            report.figure("extensions_listed", installed)
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                pages = {
                    "marketplace": (marketplace.url, "body[data-ready='1']"),
                    "baseline": (baseline.url, ""),
                }
                for round_ in range(repeat + 1):
                    order = list(pages) if round_ % 2 else list(reversed(pages))
                    for name in order:
                        sample = load(browser, *pages[name])
                        if round_:  # round 0 warms the browser, the index and the server up
                            samples[name].append(sample)
            finally:
                browser.close()

    view, base = samples["marketplace"], samples["baseline"]
    cards = {sample["cards"] for sample in view}
    if cards != {installed}:
        raise RuntimeError(f"the marketplace showed {cards} cards for {installed} installed extensions")
    stats = {
        "marketplace.first_paint_ms": Stat(tuple(s["fcp"] for s in view)),
        "marketplace.view_painted_ms": Stat(tuple(s["painted"] for s in view)),
        "marketplace.overview_call_ms": Stat(tuple(s["call"] for s in view)),
        "marketplace.wall_ms": Stat(tuple(s["wall"] for s in view)),
        "baseline.first_paint_ms": Stat(tuple(s["fcp"] for s in base)),
        "baseline.wall_ms": Stat(tuple(s["wall"] for s in base)),
    }
    for key, stat in stats.items():
        report.figure(key, stat)
    base_paint = stats["baseline.first_paint_ms"]
    report.table(
        f"Request to paint, ms (median, min), {installed} extensions listed",
        (
            "page",
            "first paint",
            "vs baseline",
            "view painted",
            "vs baseline",
            "overview call",
            "wall (Python)",
        ),
        [
            (
                "marketplace",
                stats["marketplace.first_paint_ms"],
                ratio(stats["marketplace.first_paint_ms"], base_paint),
                stats["marketplace.view_painted_ms"],
                ratio(stats["marketplace.view_painted_ms"], base_paint),
                stats["marketplace.overview_call_ms"],
                stats["marketplace.wall_ms"],
            ),
            ("baseline (static)", base_paint, "1.00x", "-", "-", "-", stats["baseline.wall_ms"]),
        ],
    )
    weight = {"marketplace": view[-1], "baseline": base[-1]}
    for name, sample in weight.items():
        report.figure(f"{name}.transfer_bytes", sample["transfer"])
        report.figure(f"{name}.body_bytes", sample["body"])
        report.figure(f"{name}.resources", sample["resources"])
    report.table(
        "Page weight of one view, bytes",
        ("page", "over the wire (headers incl.)", "bodies", "vs baseline (wire)", "requests"),
        [
            (
                name,
                f"{sample['transfer']:,}",
                f"{sample['body']:,}",
                ratio(sample["transfer"], weight["baseline"]["transfer"]),
                len(sample["resources"]),
            )
            for name, sample in weight.items()
        ],
    )
    report.table(
        "Marketplace resources, bytes",
        ("resource", "over the wire", "body"),
        [(name, f"{wire:,}", f"{body:,}") for name, wire, body in weight["marketplace"]["resources"]],
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
