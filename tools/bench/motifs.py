"""The marketplace view: first paint with 100 installed extensions and a catalog of 1,000, search, page weight.

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

The host also names a marketplace: a signed catalog of 1,000 listings (``--listings``), published and
read from a folder as ``marketplace.py`` builds it, configured in the home's ``install.toml``. Issue 17's
figures for it:

    search          the view's ``search`` method, called in-process through the served view's own dispatch
                    (the verified catalog in memory, the result rows the page gets), over many queries;
                    baseline: a plain substring scan of the same listings' id, name and summary
    catalog tab     the view opened on its Marketplace tab (the tab chosen as soon as the page's script
                    runs): first paint, and the frame after the 1,000 results are rendered; baseline: a
                    static page listing the same 1,000 names, served by a ``MotifServer`` in the same
                    process, loaded by the same browser, interleaved with it

Budgets (issue 17): search ≤ 50 ms server side (the median over every query, and the slowest query's
median), and the view's first paint ≤ 1.5x the static list's; the view paints its header before the
list, so the frame with its 1,000 results painted is held to the same 1.5x.

    python tools/bench/motifs.py [--quick] [--json FILE] [--extensions N] [--listings N] [--repeat N]
"""

from __future__ import annotations

import html
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Report, Stat, options, ratio, write_distribution
from marketplace import home_for, linear_scan, make_marketplace, timed

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
# Opens the Marketplace tab as soon as the page's own script has run (a person choosing it at once), and
# records when the search results are rendered and the frame after them.
MARKET_TAB = """
document.addEventListener("DOMContentLoaded", () => {
  document.querySelector("#tabs button[data-tab='market']").click();
});
new MutationObserver((changes, observer) => {
  if (document.body && document.body.dataset.results) {
    observer.disconnect();
    window.__results = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => { window.__listed = performance.now(); }));
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-results"]});
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
    listed: window.__listed ?? null,
    results: document.querySelectorAll("#results li").length,
    search: resources.filter((entry) => entry.name.includes("/_symphony/call/search")).map((entry) => entry.responseEnd - entry.startTime)[0] ?? null,
  };
}
"""
BASELINE_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Baseline</title><link rel='icon' href='data:,'></head>"
    "<body><h1>A minimal static page</h1></body></html>"
)

# Words of the search queries: as a person types them (every prefix), whole words, pairs, ids, no match.
TYPED = ("w", "we", "wea", "weat", "weath", "weathe", "weather", "f", "fo", "for", "fore", "forecast")
WORDS = ("digits", "flights", "delays", "dashboard", "data", "model", "turns", "into", "extension")
QUERIES = (
    *TYPED,
    *WORDS,
    "weather dashboard",
    "forecast data",
    "turns flights into delays",
    "extension 7",
    "extension 42",
    "acme.ext-0999",
    "acme.ext-05",
    "acme",
    "zzz-no-match",
    "",
)


def static_list(listings: Any) -> str:
    """The baseline: a static page listing every listing's name, id, kind, version and summary."""
    rows = "".join(
        f"<li><strong>{html.escape(item.name)}</strong> <span>{html.escape(item.id)}</span> "
        f"<span>{html.escape(item.kind)}</span> <span>v{html.escape(item.latest.version)}</span><br>"
        f"<span>{html.escape(item.summary)}</span></li>"
        for item in listings
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Catalog</title>"
        "<link rel='icon' href='data:,'></head>"
        f"<body><h1>The catalog</h1><ul>{rows}</ul></body></html>"
    )


def static_assets(folder: Path, page: str, ext_id: str) -> Any:
    """A static page as a motif's assets, for a `MotifServer` to serve."""
    from symphony_motifs import Assets

    (folder / "web").mkdir(parents=True)
    (folder / "web" / "index.html").write_text(page, encoding="utf-8")
    return Assets.locate(
        ext_id, ext_id, {"contributes": {"page": "web/index.html"}}, str(folder / "symphony.toml")
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


def load(browser: Any, url: str, ready: str, market: bool = False) -> dict[str, Any]:
    """One sample: a fresh context loads ``url`` until ``ready``; returns the page's timings and weight.

    With ``market``, the page opens its Marketplace tab at once and the sample ends when its results are
    painted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.add_init_script(MARK_READY)
        if market:
            page.add_init_script(MARKET_TAB)
        start = time.perf_counter_ns()
        page.goto(url, wait_until="load")
        page.wait_for_function(FIRST_PAINT, timeout=60_000)
        if ready:
            page.wait_for_selector(ready, timeout=60_000)
            page.wait_for_function("() => window.__painted !== undefined", timeout=60_000)
        if market:
            page.wait_for_function("() => window.__listed !== undefined", timeout=60_000)
        wall = time.perf_counter_ns() - start
        sample: dict[str, Any] = page.evaluate(TIMINGS)
        sample["wall"] = wall / 1e6
        return sample
    finally:
        context.close()


def measure_search(dispatch: Any, listings: Any, repeat: int) -> tuple[Stat, Stat, tuple[str, Stat]]:
    """The view's ``search`` as the page calls it, through the served view's dispatch, in this process,
    against a linear substring scan of the same listings; the queries interleaved, after a warm-up round.
    Returns both figures over every query, and the slowest query with its samples."""
    entries = [{"id": item.id, "name": item.name, "summary": item.summary} for item in listings]
    per_query: dict[str, list[int]] = {query: [] for query in QUERIES}
    scan: list[int] = []
    search: list[int] = []
    for round_ in range(repeat + 1):
        for query in QUERIES:
            scan_ns, plain = timed(lambda query=query: linear_scan(entries, query))
            search_ns, answer = timed(lambda query=query: dispatch("search", {"text": query, "kind": None}))
            if not round_:  # the warm-up round checks the view found what the scan found
                expected = {entry["id"] for entry in plain}
                if {row["id"] for row in answer["results"]} != expected or answer["total"] != len(expected):
                    raise RuntimeError(f"search {query!r}: the view and the linear scan disagree")
                continue
            scan.append(scan_ns)
            search.append(search_ns)
            per_query[query].append(search_ns)
    medians = {query: Stat.of_ns(values) for query, values in per_query.items()}
    worst = max(medians, key=lambda query: medians[query].median)
    return Stat.of_ns(search), Stat.of_ns(scan), (worst, medians[worst])


def search_table(
    report: Report, count: int, searched: Stat, scanned: Stat, slowest: tuple[str, Stat]
) -> None:
    query, worst = slowest
    report.figure("search.view_ms", searched)
    report.figure("search.linear_scan_ms", scanned)
    report.figure("search.slowest_query", query)
    report.figure("search.slowest_query_ms", worst)
    report.table(
        f"The view's search, catalog of {count}, {len(QUERIES)} queries, in-process (ms per query)",
        ("figure", "median (min)", "vs linear scan"),
        [
            ("linear scan (baseline)", str(scanned), "1.00x"),
            ("view search, every query", str(searched), ratio(searched, scanned)),
            (f"view search, slowest query ({query!r})", str(worst), ratio(worst, scanned)),
        ],
    )
    report.budget(f"view search, catalog of {count:,}, server side (median)", searched.median, 50, "ms")
    report.budget(f"view search, catalog of {count:,}, slowest query (median)", worst.median, 50, "ms")


def catalog_table(
    report: Report, count: int, view: list[dict[str, Any]], static: list[dict[str, Any]]
) -> None:
    shown = {sample["results"] for sample in view}
    if shown != {count}:
        raise RuntimeError(f"the Marketplace tab showed {shown} results for a catalog of {count}")
    stats = {
        "catalog.first_paint_ms": Stat(tuple(s["fcp"] for s in view)),
        "catalog.list_painted_ms": Stat(tuple(s["listed"] for s in view)),
        "catalog.search_call_ms": Stat(tuple(s["search"] for s in view)),
        "catalog.wall_ms": Stat(tuple(s["wall"] for s in view)),
        "list.first_paint_ms": Stat(tuple(s["fcp"] for s in static)),
        "list.wall_ms": Stat(tuple(s["wall"] for s in static)),
    }
    for key, stat in stats.items():
        report.figure(key, stat)
    first, base = stats["catalog.first_paint_ms"], stats["list.first_paint_ms"]
    report.table(
        f"Request to paint, Marketplace tab with a catalog of {count}, ms (median, min)",
        ("page", "first paint", "vs static list", "results painted", "vs static list", "search call", "wall"),
        [
            (
                "view, Marketplace tab",
                first,
                ratio(first, base),
                stats["catalog.list_painted_ms"],
                ratio(stats["catalog.list_painted_ms"], base),
                stats["catalog.search_call_ms"],
                stats["catalog.wall_ms"],
            ),
            (f"static list of {count} (baseline)", base, "1.00x", "-", "-", "-", stats["list.wall_ms"]),
        ],
    )
    report.budget(
        f"view first paint vs a static list of {count:,} (ratio)", first.median / base.median, 1.5, "x"
    )
    report.budget(
        f"view's {count:,} results painted vs the static list's first paint (ratio)",
        stats["catalog.list_painted_ms"].median / base.median,
        1.5,
        "x",
    )


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--extensions", type=int, default=100, help="generated extensions (default 100)")
    parser.add_argument("--listings", type=int, default=1000, help="listings in the catalog (default 1000)")
    args = parser.parse_args()
    repeat = args.repeat or (6 if args.quick else 20)
    searches = 5 if args.quick else 15
    report = Report("motifs", args)
    report.note(
        f"motifs: the marketplace view with {args.extensions} installed extensions and a catalog of "
        f"{args.listings} vs static pages; {repeat} samples each, interleaved; Chromium {CHROMIUM}; "
        f"Python {sys.version.split()[0]}"
    )
    report.figure("extensions", args.extensions)
    report.figure("listings", args.listings)

    from playwright.sync_api import sync_playwright

    from symphony_core import Host
    from symphony_motifs import MotifServer, serve

    samples: dict[str, list[dict[str, Any]]] = {"marketplace": [], "baseline": [], "catalog": [], "list": []}
    with tempfile.TemporaryDirectory(prefix="symphony-bench-motifs-") as tmp:
        root = Path(tmp)
        build_site(root / "site", args.extensions)
        market_root = make_marketplace(root / "market", args.listings)
        home_for(root / "home", market_root.parent.parent, market_root)

        def refuse(method: str, arguments: Any) -> Any:
            raise AssertionError("a static page calls nothing")

        with (
            Host(root / "home", path=[str(root / "site"), *sys.path]) as host,
            serve(host) as marketplace,
        ):
            installed = len(host.discover())
            report.figure("extensions_listed", installed)
            listings = host.listings()
            searched, scanned, slowest = measure_search(marketplace.dispatch, listings, searches)
            assets = static_assets(root / "baseline", BASELINE_PAGE, "bench.baseline")
            catalog_assets = static_assets(root / "list", static_list(listings), "bench.list")
            with (
                MotifServer(assets, refuse) as baseline,
                MotifServer(catalog_assets, refuse) as static,
                sync_playwright() as playwright,
            ):
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                try:
                    pages = {
                        "marketplace": (marketplace.url, "body[data-ready='1']", False),
                        "baseline": (baseline.url, "", False),
                        "catalog": (marketplace.url, "", True),
                        "list": (static.url, "", False),
                    }
                    for round_ in range(repeat + 1):
                        order = list(pages) if round_ % 2 else list(reversed(pages))
                        for name in order:
                            sample = load(browser, *pages[name])
                            if round_:  # round 0 warms the browser, the index and the server up
                                samples[name].append(sample)
                finally:
                    browser.close()

    search_table(report, len(listings), searched, scanned, slowest)
    catalog_table(report, len(listings), samples["catalog"], samples["list"])
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
