"""The demo's steps: a host, consent, the examples started, the flights pipeline and the digits instrument.

Everything here goes through `symphony_core.Host`, as any host application would: the examples'
code runs under their grants (in isolated workers, or in this process under the guard), never
called directly.
"""

from __future__ import annotations

import re
import shutil
import sysconfig
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from symphony_core import ExtensionInfo, Host, State, SymphonyError
from symphony_operators import Operator, Pipeline

from . import _data
from ._consent import Decision, decide
from ._tier import Tier

CLEAN, WEATHER, ROUTES, BY_WEATHER = (
    "examples.clean-flights",
    "examples.flight-weather",
    "examples.route-delays",
    "examples.weather-delays",
)
OPERATORS = (CLEAN, WEATHER, ROUTES, BY_WEATHER)
DIGITS = "examples.digits"
MISBEHAVING = ("examples.greedy-stats", "examples.sneaky-summary", "examples.stuck")
EXAMPLES = (*OPERATORS, DIGITS, *MISBEHAVING)
"""The examples the demo starts (the dashboard motif is started only when it is shown)."""
DASHBOARD = "examples.dashboard"
IMPORT_BUDGET = 6.0
ACTIVATE_BUDGET = 3.0
STARTING_AT_ONCE = 2
"""Well-behaved examples started at the same time (each worker start imports polars or onnxruntime)."""
DIGITS_BATCH = 40
FRAME = re.compile(r'^  File "([^"]+)", line (\d+), in [^\n]+\n    ([^\n]+)$', re.MULTILINE)


@dataclass
class Outcome:
    """How one example ended up: running, refused consent, or failed with the host's reason."""

    id: str
    kind: str
    distribution: str
    version: str
    state: str
    outcome: str
    """``running``, ``refused`` or ``failed``."""
    message: str = ""
    hint: str = ""
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Results:
    """Everything the demo found and measured; what every report (terminal, HTML, dashboard) shows."""

    tier: Tier
    home: Path
    discovered: list[dict[str, Any]] = field(default_factory=list)
    consent: list[Decision] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    pipeline: dict[str, Any] = field(default_factory=dict)
    digits: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier.as_json(),
            "home": str(self.home),
            "discovered": self.discovered,
            "consent": [decision.as_json() for decision in self.consent],
            "extensions": [outcome.as_json() for outcome in self.outcomes],
            "pipeline": self.pipeline,
            "digits": self.digits,
            "timings": self.timings,
        }


class Steps:
    """Progress for the long steps: ``task(description, total)`` gives back an ``advance(n)`` function."""

    def task(self, description: str, total: int | None) -> Callable[[int], None]:
        return lambda n: None

    def done(self, description: str) -> None:
        """A step finished."""


def prepare(host: Host, results: Results) -> None:
    """Discover the examples and decide on each permission they ask for; grant what is reasonable."""
    with _timed(results, "discover"):
        infos = {info.id: info for info in host.discover()}
    results.discovered = [_discovered(info) for info in infos.values()]
    missing = [ext for ext in (*EXAMPLES, DASHBOARD) if ext not in infos]
    if missing:
        raise SymphonyError(
            f"the example extensions {', '.join(missing)} are not installed in this environment",
            hint="run the demo from the workspace (`hatch run symphony demo`), or install symphony-demo",
        )
    for ext in (
        *EXAMPLES,
        DASHBOARD,
    ):  # consent is quick: read from the manifests, stored in the host's state
        decisions = decide(ext, host.consent(ext).requested)
        results.consent += decisions
        kinds = sorted({d.kind for d in decisions if d.granted})
        if kinds:
            host.grant(ext, kinds, actor="symphony demo")


def execute(host: Host, results: Results, work: Path, steps: Steps, on_update: Callable[[], None]) -> None:
    """Start the examples, then run the pipeline and the instrument if they are running; fill ``results``.

    ``on_update`` is called whenever ``results`` changed (the dashboard shows it live).
    """
    infos = {info.id: info for info in host.extensions()}
    # Files an extension is granted must exist before its worker starts (the kernel's rules are made
    # for paths that exist): the weather table goes into the weather operator's data folder first.
    weather = host.home.data_dir(WEATHER)
    weather.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_data.weather_csv(), weather / "weather.csv")
    with _timed(results, "prepare data"):
        flights = _data.flights_csv(work / "data")

    with _timed(results, "start extensions"):
        results.outcomes = _start_all(host, infos, steps)
    on_update()

    running = {o.id for o in results.outcomes if o.outcome == "running"}
    if set(OPERATORS) <= running:
        with _timed(results, "pipeline"):
            results.pipeline = _pipeline(host, infos, flights, work, steps)
        on_update()
    if DIGITS in running:
        with _timed(results, "digits"):
            results.digits = _digits(host, steps, on_partial=lambda part: _partial(results, part, on_update))
        on_update()


def _partial(results: Results, part: dict[str, Any], on_update: Callable[[], None]) -> None:
    results.digits = part
    on_update()


@contextmanager
def _timed(results: Results, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        results.timings[name] = round(time.perf_counter() - start, 3)


def _discovered(info: ExtensionInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "kind": info.kind,
        "name": info.name,
        "summary": info.summary,
        "distribution": info.distribution,
        "version": info.version,
        "state": info.state.value,
    }


def _start_all(host: Host, infos: dict[str, ExtensionInfo], steps: Steps) -> list[Outcome]:
    """Start every example at once; each one that cannot start says why, and the others go on."""
    advance = steps.task("starting the example extensions", len(EXAMPLES))

    def start(ext: str) -> Outcome:
        began = time.perf_counter()
        info = infos[ext]
        try:
            host.start(ext)
        except SymphonyError as exc:
            state = host.inspect(ext).state
            outcome = "failed" if state is State.FAILED else "refused"
            now = host.inspect(ext)
            problem = now.problem
            message = problem.message if problem is not None and state is State.FAILED else exc.message
            where = _where(getattr(exc, "remote_traceback", ""))
            if where:
                message += f" (at {where})"
            hint = (problem.hint if problem is not None and state is State.FAILED else exc.hint) or ""
            return Outcome(
                ext,
                info.kind,
                info.distribution,
                info.version,
                state.value,
                outcome,
                message,
                hint,
                round(time.perf_counter() - began, 3),
            )
        finally:
            advance(1)
        return Outcome(
            ext,
            info.kind,
            info.distribution,
            info.version,
            State.ACTIVE.value,
            "running",
            seconds=round(time.perf_counter() - began, 3),
        )

    # The misbehaving ones each get a thread of their own at once (one waits out its whole budget); the
    # others share a few, so that their worker starts do not crowd each other past the budget.
    with (
        ThreadPoolExecutor(len(MISBEHAVING), "symphony-demo-misbehaving") as apart,
        ThreadPoolExecutor(STARTING_AT_ONCE, "symphony-demo-start") as shared,
    ):
        futures = {ext: (apart if ext in MISBEHAVING else shared).submit(start, ext) for ext in EXAMPLES}
        return [futures[ext].result() for ext in EXAMPLES]


def _where(traceback: str) -> str:
    """The last line of extension code in a worker's traceback: what it was doing when it was stopped."""
    stdlib = sysconfig.get_paths()["stdlib"]
    frames = FRAME.findall(traceback)
    for path, line, code in reversed(frames):
        if not path.startswith(stdlib) and "/symphony_core/" not in path:
            return f"{Path(path).parent.name}/{Path(path).name}:{line}: {code.strip()}"
    return ""


class _Counting:
    """The host as a pipeline step sees it, counting each step's call for the progress bar."""

    def __init__(self, host: Host, advance: Callable[[int], None]) -> None:
        self._host = host
        self._advance = advance

    def call(self, extension: str, method: str, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._host.call(extension, method, *args, **kwargs)
        finally:
            self._advance(1)


def declared(info: ExtensionInfo, work: Path) -> Operator:
    """An installed operator as a pipeline step: its declared schemas, from its manifest; its code run by the host.

    Made from the manifest alone (its config model is left out, so nothing of the extension is imported
    here): in the isolated tier the operator's code exists only in its workers.
    """
    manifest = {key: value for key, value in (info.manifest or {}).items() if key != "config"}
    folder = work / "steps" / info.id
    return Operator.create(manifest=manifest, data_dir=folder / "data", cache_dir=folder / "cache")


def _pipeline(
    host: Host, infos: dict[str, ExtensionInfo], flights: Path, work: Path, steps: Steps
) -> dict[str, Any]:
    """Clean the flights, join the weather, then delays per route and by weather; written to Parquet."""
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    advance = steps.task("building the pipeline: each operator builds its query", len(OPERATORS))
    counting = cast(Host, _Counting(host, advance))
    clean, weather, routes, by_weather = (declared(infos[ext], work) for ext in OPERATORS)
    pipeline = (
        Pipeline(name="nycflights13", engine="streaming")
        .source("flights", flights, null_values="NA")
        .step(clean, host=counting)
        .step(weather, host=counting)
        .step(routes, host=counting)
        .sink(out / "routes.parquet")
        .step(by_weather, host=counting, input=WEATHER)
        .sink(out / "weather.parquet")
        .sink(out / "flights-weather.parquet", input=WEATHER)
    )
    began = time.perf_counter()
    plan = pipeline.build()
    built = time.perf_counter() - began
    write = steps.task("running the pipeline: one collect writes every output", None)
    began = time.perf_counter()
    run = plan.run()
    ran = time.perf_counter() - began
    write(1)
    by_route = pl.read_parquet(run.outputs[0])
    conditions = pl.read_parquet(run.outputs[1])
    enriched = pl.scan_parquet(run.outputs[2])
    counts = enriched.select(
        pl.len().alias("flights"), pl.col("temp").is_null().sum().alias("without_weather")
    ).collect()
    raw_rows = pl.scan_csv(flights, infer_schema=False).select(pl.len()).collect().item()
    return {
        "source": str(flights),
        "flights_read": int(raw_rows),
        "flights_clean": int(counts["flights"].item()),
        "flights_without_weather": int(counts["without_weather"].item()),
        "routes": int(by_route.height),
        "schemas": {step.name: _schema(plan.schema(step.name)) for step in pipeline.steps},
        "worst_routes": _rows(by_route.filter(pl.col("flights") >= 365).head(10)),
        "busiest_routes": _rows(by_route.sort("flights", descending=True).head(10)),
        "by_weather": _rows(conditions),
        "outputs": [str(path) for path in run.outputs],
        "build_seconds": round(built, 3),
        "run_seconds": round(ran, 3),
    }


def _schema(schema: pl.Schema) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in schema.items()}


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {key: round(value, 3) if isinstance(value, float) else value for key, value in row.items()}
        for row in frame.iter_rows(named=True)
    ]


def _digits(host: Host, steps: Steps, on_partial: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The digits the model never saw in training, read by the instrument in batches."""
    card = host.call(DIGITS, "model_card")
    images, labels = _data.digits()
    every = int(card["held_out_every"])
    pixels = (images[::every] / float(card["scale"])).astype(np.float32)
    truth = labels[::every]
    advance = steps.task("reading the held-out digits with the instrument", len(pixels))
    predicted: list[int] = []
    confidence: list[float] = []
    latencies: list[float] = []
    for start in range(0, len(pixels), DIGITS_BATCH):
        batch = pixels[start : start + DIGITS_BATCH]
        began = time.perf_counter()
        answer = host.call(DIGITS, "infer", {"pixels": batch})
        latencies.append(time.perf_counter() - began)
        predicted += [int(label) for label in answer["label"]]
        confidence += [float(p) for p in np.max(answer["probabilities"], axis=1)]
        advance(len(batch))
        on_partial(_digit_figures(card, pixels, truth, predicted, confidence, latencies, images, every))
    return _digit_figures(card, pixels, truth, predicted, confidence, latencies, images, every)


def _digit_figures(
    card: dict[str, Any],
    pixels: np.ndarray[Any, Any],
    truth: np.ndarray[Any, Any],
    predicted: list[int],
    confidence: list[float],
    latencies: list[float],
    images: np.ndarray[Any, Any],
    every: int,
) -> dict[str, Any]:
    done = len(predicted)
    right = np.asarray(predicted) == truth[:done]
    confusion = np.zeros((10, 10), dtype=int)
    for true, guess in zip(truth[:done], predicted, strict=True):
        confusion[int(true), guess] += 1
    misread = [
        {
            "image": int(i * every),
            "true": int(truth[i]),
            "predicted": predicted[i],
            "confidence": round(confidence[i], 3),
            "pixels": [int(v) for v in images[i * every]],
        }
        for i in np.flatnonzero(~right)
    ]
    return {
        "images": len(pixels),
        "read": done,
        "correct": int(right.sum()),
        "accuracy": round(float(right.mean()), 4) if done else None,
        "build_accuracy": card.get("held_out_accuracy"),
        "confusion": confusion.tolist(),
        "misread": misread,
        "mean_confidence": round(float(np.mean(confidence)), 4) if done else None,
        "batch_size": DIGITS_BATCH,
        "batch_ms_median": round(float(np.median(latencies)) * 1000, 2) if latencies else None,
        "model_sha256": card.get("sha256"),
        "trained_on": card.get("trained_on"),
        "estimator": card.get("estimator"),
    }
