"""What a marketplace costs a host: verifying its signed catalog with TUF, and searching it, at N extensions.

The marketplace is generated: N listings (two versions each, one wheel per version, a README of about
2 KB), published and signed by the same code ``symphony catalog build`` uses once it has read the wheels
(TUF metadata for the catalog and every wheel, ed25519 keys), in a folder the host reads as its
marketplace. Every figure is measured in one process, after one warm-up round, the variants interleaved:

    json.load            baseline: read and parse the same catalog.json, nothing verified
    verify, first use    `open_marketplace` with an empty TUF cache: every metadata file and the catalog
                         fetched, signatures, versions, expiry, hashes and lengths checked, catalog parsed
    verify, warm         the same with the cache of the previous use: the timestamp fetched again, the
                         snapshot, targets and catalog checked from the cache, the catalog parsed
    linear scan          baseline: a substring test on the id, name and summary of every parsed entry
    search               `Listings.search` of the same words (every word in id, name, summary, distribution;
                         ranked)

Budgets (issue 17): search ≤ 50 ms and catalog verification ≤ 100 ms at N = 1,000.

    python tools/bench/marketplace.py [--quick] [--json FILE] [--check] [--sizes 1000,5000]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Report, Stat, options, ratio

QUERIES = ("weather", "forecast data", "acme.ext-0999", "zzz-no-match", "")


def make_marketplace(folder: Path, count: int) -> Path:
    """Publish ``count`` generated listings, signed, in ``folder/out``; return the pinned root file."""
    from symphony_core._runtime._listings import ListedFile, ListedVersion, Listings, listing
    from symphony_core._runtime._publish import LIFETIMES, _Signing

    words = ("weather", "forecast", "digits", "flights", "delays", "dashboard", "data", "model")
    readme = "# An extension\n\n" + "It does one thing well. " * 80
    listings = []
    for number in range(count):
        ext_id = f"acme.ext-{number:04d}"
        versions = [
            ListedVersion(
                version,
                "symphony-operators>=0.1,<0.2",
                ({"type": "net.connect", "hosts": ["api.example.com:443"], "reason": "Fetches its data."},),
                (
                    ListedFile(
                        f"acme_ext_{number:04d}-{version}-py3-none-any.whl",
                        hashlib.sha256(f"{ext_id}{version}".encode()).hexdigest(),
                        20_000 + number,
                    ),
                ),
                ">=3.10",
            )
            for version in ("1.0.0", "1.1.0")
        ]
        listings.append(
            listing(
                ext_id=ext_id,
                kind=("instrument", "operator", "motif")[number % 3],
                name=f"Extension {number} {words[number % len(words)]}",
                summary=f"Turns {words[(number * 7) % len(words)]} into {words[(number * 3) % len(words)]}.",
                distribution=f"acme-ext-{number:04d}",
                index="https://pypi.example.org/simple/",
                versions=versions,
                readme=readme,
                readme_type="text/markdown",
                links={"Source": f"https://example.org/{ext_id}"},
            )
        )
    catalog = Listings(tuple(listings), "2025-01-01T00:00:00Z", "https://pypi.example.org/simple/")
    out = folder / "out"
    signing = _Signing.open(out, folder / "keys")
    data = json.dumps(catalog.as_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    wheels = {file.filename: file for item in catalog for version in item.versions for file in version.files}
    signing.publish(data.encode("utf-8"), wheels, LIFETIMES["timestamp"])
    return out / "metadata" / "1.root.json"


def home_for(folder: Path, out: Path, root: Path) -> Any:
    from symphony_core._store._home import Home

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root, folder / "root.json")
    (folder / "install.toml").write_text(
        f'[marketplace]\nurl = "{out}"\nroot = "root.json"\n', encoding="utf-8"
    )
    return Home(folder)


def timed(call: Callable[[], Any]) -> tuple[int, Any]:
    start = time.perf_counter_ns()
    value = call()
    return time.perf_counter_ns() - start, value


def linear_scan(entries: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    words = text.casefold().split()
    return [
        entry
        for entry in entries
        if all(
            word in entry["id"] or word in entry["name"].casefold() or word in entry["summary"].casefold()
            for word in words
        )
    ]


def measure(report: Report, folder: Path, count: int, repeat: int) -> None:
    from symphony_core._runtime._marketplace import open_marketplace

    root = make_marketplace(folder / f"n{count}", count)
    out = root.parent.parent
    (catalog_file,) = (out / "targets").glob("*.catalog.json")
    size_kb = catalog_file.stat().st_size / 1024
    targets_kb = max(path.stat().st_size for path in (out / "metadata").glob("*.targets.json")) / 1024
    warm_home = home_for(folder / f"n{count}" / "warm", out, root)
    open_marketplace(warm_home)  # warm-up: imports, and the cache of the warm variant

    samples: dict[str, list[int]] = {"json.load": [], "first use": [], "warm": []}
    for round_number in range(repeat):
        samples["json.load"].append(timed(lambda: json.loads(catalog_file.read_bytes()))[0])
        fresh = home_for(folder / f"n{count}" / f"fresh-{round_number}", out, root)
        samples["first use"].append(timed(lambda home=fresh: open_marketplace(home))[0])
        samples["warm"].append(timed(lambda: open_marketplace(warm_home))[0])
    loads, first, warm = (Stat.of_ns(samples[key]) for key in ("json.load", "first use", "warm"))

    market = open_marketplace(warm_home)
    assert market is not None
    listings = market.listings
    entries = json.loads(catalog_file.read_bytes())["extensions"]
    scan: list[int] = []
    search: list[int] = []
    for _ in range(repeat):
        for query in QUERIES:
            elapsed, plain = timed(lambda query=query: linear_scan(entries, query))
            scan.append(elapsed)
            elapsed, found = timed(lambda query=query: listings.search(query))
            search.append(elapsed)
            assert {item.id for item in found} == {entry["id"] for entry in plain}, query
    scanned, searched = Stat.of_ns(scan), Stat.of_ns(search)

    report.note(
        f"N = {count}: catalog.json {size_kb:.0f} KB, largest targets metadata {targets_kb:.0f} KB, "
        f"{len(listings)} listings"
    )
    report.table(
        f"Verifying the catalog, N = {count} (ms)",
        ("figure", "median (min)", "vs json.load"),
        [
            ("json.load (baseline)", str(loads), "1.00x"),
            ("verify, first use", str(first), ratio(first, loads)),
            ("verify, warm", str(warm), ratio(warm, loads)),
        ],
    )
    report.table(
        f"Searching the catalog, N = {count}, {len(QUERIES)} queries (ms per query)",
        ("figure", "median (min)", "vs linear scan"),
        [
            ("linear scan (baseline)", str(scanned), "1.00x"),
            ("search", str(searched), ratio(searched, scanned)),
        ],
    )
    for key, stat in (("json_load", loads), ("verify_first", first), ("verify_warm", warm)):
        report.figure(f"n{count}.{key}", stat)
    report.figure(f"n{count}.linear_scan", scanned)
    report.figure(f"n{count}.search", searched)
    report.figure(f"n{count}.catalog_kb", size_kb)
    if count == 1000:
        report.budget("search at N = 1,000 (median)", searched.median, 50, "ms")
        report.budget("verification at N = 1,000, warm (median)", warm.median, 100, "ms")
        report.budget("verification at N = 1,000, first use (median)", first.median, 100, "ms")


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", help="numbers of extensions, comma-separated (default 1000; full 1000,5000)"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in (args.sizes or ("1000" if args.quick else "1000,5000")).split(",")]
    repeat = args.repeat or (5 if args.quick else 15)
    report = Report("marketplace", args)
    report.note(
        f"marketplace: sizes {sizes}, {repeat} samples per figure; Python {sys.version.split()[0]}; "
        f"{os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="symphony-bench-marketplace-") as tmp:
        for count in sizes:
            measure(report, Path(tmp), count, repeat)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
