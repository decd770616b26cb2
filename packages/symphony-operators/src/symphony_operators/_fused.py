"""Isolated steps fused into one query: their plans cross as data and run together in a restricted runner.

Run step by step, an isolated pipeline pays a collect, a write and a read of every step's whole result
(see `IsolatedOperator`). When the steps allow it, the host fuses them instead:

1. **Each step's plan, as data.** A worker of the step's extension builds the operator's query on an empty
   frame of the step's input schema and answers with polars' serialized plan (JSON), nothing else
   (``Operator.query_plan``). The host never deserializes it: it reads it as JSON and checks it with
   `check_step`, an allow-list. Every key must be one this polars writes for the native expressions and
   plan nodes of `_corpus` (learnt once per process, from this polars); so a plan that holds a Python
   function (which polars would pickle), a plugin (a shared library polars would load), a scan or a sink
   (a file read or written) or anything else polars may add later is refused, whoever wrote it. The
   step's input appears in its plan as the empty frame it was built on, recognised by its exact form.
2. **Stitched by the host.** The step's input is replaced by the plan of what feeds it: the step before
   (fused already), or the host's own query of its sources (`check_source`: scans of local files, nothing
   that calls Python). The result is one plan of the host's scans and the steps' native expressions.
3. **Run in a runner.** The plan runs in a `PlanRunner`: a restricted worker the host starts for the
   kit (`Workers.helper`), which loads no extension's code, may read only the files the host's scans
   name, and works under the last step's limits. It deserializes the plan, collects what polars asks
   of the step (its columns), and sends the frame back through shared memory; the host checks it
   against the schema the step was built to make. A plan that exhausts the runner's memory or time
   kills the runner only.

What is not fused runs step by step as before: a step whose plan is refused, an operator from a kit
that cannot build plans, an input the host cannot express as a plan (a frame made in code that is too
large to write as JSON, a scan of remote files), and every step after one that was not fused.

Fusing changes where data is seen: the runner sees the sources and every fused step's work, but runs no
extension's code; a step's worker sees only the empty frame its plan is built on.
"""

from __future__ import annotations

import functools
import io
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from symphony_core import Extension

MAX_PLAN_BYTES = 1 << 20
"""A step's plan built on an empty frame is a few kilobytes; a source's plan with a frame written into it
may be larger (the frame's bytes are in it), up to this."""
MAX_SOURCE_BYTES = 16 << 20
"""The host's own query of its sources, as JSON: a frame made in code is written into it, 4 bytes of text per
byte of data; a larger one is not fused (the runner would read it as slowly as the steps would)."""
MAX_RUNNER_PATHS = 32
"""A runner is granted the files its sources read one by one up to this many, else their folders."""
RUNNER = "symphony_operators._fused:PlanRunner"
MAX_STREAMS = 8
"""Streams of batches a runner keeps open at once (each holds polars' buffers of a running query)."""
MAX_DEPTH = 400
"""How deeply a plan may nest (each step and expression adds a few levels)."""
_INPUT = "DataFrameScan"
_SCAN = "Scan"
_FIELDS = "fields"
_SCAN_TYPES = frozenset({"Parquet", "Ipc", "Csv", "NDJson"})
_NEVER = frozenset({_SCAN, "Sink", "PythonScan", "SQL", "catalog_tables"})
"""Keys never allowed in a step's plan, even if polars wrote them for the corpus: file access and SQL
(whose table functions read files)."""
_EMPTY_ONLY = frozenset({"apply", "credential_provider"})
"""Keys that carry a Python callback when set: allowed only when null."""
_BYTES_UNDER = frozenset({"df", "List", "Series", "Binary", "Array"})
"""Where polars writes bytes (Arrow IPC of a literal or a frame); a long list of numbers anywhere else
could be a pickled function, and is refused."""
_SHORT = 64


class NotFusable(Exception):
    """Why a step, or what feeds it, cannot be fused: it then runs step by step."""


@dataclass(frozen=True)
class Fused:
    """A plan the host checked: the stitched query of sources and fused steps, and the files it reads."""

    plan: Any
    """The plan as JSON data (dicts and lists): never deserialized in the host."""
    reads: frozenset[str]
    steps: tuple[str, ...]
    """The ids of the fused steps, in order (for errors)."""
    size: int
    """About how long `text` is: a plan that reads its input several times holds it as many times."""

    @functools.cached_property
    def text(self) -> str:
        """The plan as the runner reads it."""
        return json.dumps(self.plan, separators=(",", ":"))


def runner_reads(files: frozenset[str]) -> list[str]:
    """What a runner is granted to read for ``files``: themselves, or their folders when they are many."""
    paths = sorted(files)
    if len(paths) > MAX_RUNNER_PATHS:
        paths = sorted({os.path.dirname(path) for path in paths})
    if len(paths) > MAX_RUNNER_PATHS:
        raise NotFusable(f"its sources read files in {len(paths)} folders, over {MAX_RUNNER_PATHS}")
    return paths


def serialize(frame: pl.LazyFrame) -> str:
    """polars' JSON form of a lazy frame's plan (its only form that can be checked without running it)."""
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # polars calls the JSON form unstable: the runner reads it with the same polars
        return frame.serialize(format="json")


def deserialize(plan: str) -> pl.LazyFrame:
    """The lazy frame of a plan the host checked (in the runner only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pl.LazyFrame.deserialize(io.StringIO(plan), format="json")


def placeholder(schema: Mapping[str, Any]) -> Any:
    """The node that stands for a step's input in its plan: an empty frame of its schema, as polars writes it
    (shared: never change it)."""
    return _of_schema(schema)[1]


def empty_frame(schema: Mapping[str, Any]) -> pl.DataFrame:
    """An empty frame of ``schema`` (shared: polars frames do not change in place)."""
    return _of_schema(schema)[0]


def _of_schema(schema: Mapping[str, Any]) -> tuple[pl.DataFrame, Any]:
    """The empty frame and placeholder of a schema, made once per schema (a pipeline's steps mostly pass
    one schema on, and making a frame of it cost more than the rest of a step's check); the dtypes'
    ``repr`` tells schemas apart, parameters and all."""
    key = tuple((name, repr(dtype)) for name, dtype in schema.items())
    made = _SCHEMAS.get(key)
    if made is None:
        frame = pl.DataFrame(schema=schema)
        made = frame, json.loads(serialize(frame.lazy()))[_INPUT]
        if len(_SCHEMAS) >= 256:
            _SCHEMAS.clear()
        _SCHEMAS[key] = made
    return made


_SCHEMAS: dict[tuple[tuple[str, str], ...], tuple[pl.DataFrame, Any]] = {}


def parse(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise NotFusable(f"{what} is a {type(text).__name__}, not a plan")
    if len(text) > MAX_PLAN_BYTES:
        raise NotFusable(f"{what} is {len(text)} bytes long, over {MAX_PLAN_BYTES}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise NotFusable(f"{what} is not JSON ({exc})") from None


def check_step(
    plan: Any, given: Mapping[str, Any], upstream: Fused, step: str, *, size: int | None = None
) -> Fused:
    """``plan`` (a step's, as JSON data: ``size`` long as text, when known) checked against the allow-list,
    with its input replaced by ``upstream``: the fused plan through this step. `NotFusable` says why not."""
    input_node = placeholder(given)
    inputs = 0

    def on_input(node: Any) -> Any:
        nonlocal inputs
        if node[_INPUT] != input_node:
            raise NotFusable("its plan holds a frame of its own")
        inputs += 1
        return upstream.plan

    stitched = _walk(plan, "its plan", on_input=on_input)
    if not inputs:
        raise NotFusable("its plan does not read its input")
    size = (len(json.dumps(plan)) if size is None else size) + inputs * upstream.size
    if size > MAX_SOURCE_BYTES:
        raise NotFusable(f"its plan with its input's would be {size} bytes long, over {MAX_SOURCE_BYTES}")
    return Fused(stitched, upstream.reads, (*upstream.steps, step), size)


def check_source(plan: Any) -> Fused:
    """The host's own query of its sources (as JSON data), checked the same way except for its scans of
    local files, whose paths are the files the runner may read."""
    reads: set[str] = set()

    def on_scan(node: Any) -> Any:
        reads.update(_scan_files(node))
        return node

    checked = _walk(plan, "the source's plan", on_input=lambda node: node, on_scan=on_scan)
    return Fused(checked, frozenset(reads), (), len(json.dumps(plan)))


def _walk(
    plan: Any, where: str, *, on_input: Callable[[Any], Any], on_scan: Callable[[Any], Any] | None = None
) -> Any:
    """``plan`` rebuilt, each key checked (`_check_key`); an input frame's node and a scan's node are what
    ``on_input`` and ``on_scan`` make of them (without ``on_scan``, a scan is refused)."""
    allowed = vocabulary()

    def walk(node: Any, depth: int, under: str = "") -> Any:
        if depth > MAX_DEPTH:
            raise NotFusable(f"{where} nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, list):
            if not _numbers(node):
                return [walk(item, depth + 1, under) for item in node]
            if len(node) > _SHORT and under not in _BYTES_UNDER:
                raise NotFusable(f"{where} holds {len(node)} bytes under '{under[:60]}'")
            return node
        if not isinstance(node, dict):
            return node
        if len(node) == 1 and _INPUT in node:
            return on_input(node)
        if len(node) == 1 and _SCAN in node and on_scan is not None:
            return {_SCAN: on_scan(node[_SCAN])}
        out = {}
        for key, value in node.items():
            _check_key(key, value, allowed, where)
            if key == _FIELDS and isinstance(value, dict):  # a schema's columns: names, then types
                out[key] = {name: walk(dtype, depth + 2, key) for name, dtype in value.items()}
            else:
                out[key] = walk(value, depth + 1, key)
        return out

    return walk(plan, 0)


def _check_key(key: Any, value: Any, allowed: frozenset[str], where: str) -> None:
    if key not in allowed:
        raise NotFusable(f"{where} holds '{str(key)[:60]}', which is not a native expression or plan node")
    if key in _EMPTY_ONLY and value is not None:
        raise NotFusable(f"{where} sets '{key}', which calls Python")


def _numbers(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, int) and not isinstance(item, bool) for item in items)


def _scan_files(scan: Any) -> list[str]:
    """The local files a scan node reads; `NotFusable` for anything else (remote files, Python callbacks)."""
    if not isinstance(scan, dict):
        raise NotFusable("a scan of an unknown form")
    kind = scan.get("scan_type")
    if not (isinstance(kind, dict) and len(kind) == 1 and next(iter(kind)) in _SCAN_TYPES):
        raise NotFusable("a scan of a format the runner does not read")
    options = scan.get("unified_scan_args")
    cloud = options.get("cloud_options") if isinstance(options, dict) else None
    if not isinstance(options, dict) or (
        isinstance(cloud, dict) and cloud.get("credential_provider") is not None
    ):
        raise NotFusable("a scan with credentials")
    sources = scan.get("sources")
    paths = sources.get("Paths") if isinstance(sources, dict) and len(sources) == 1 else None
    if not isinstance(paths, list) or not paths:
        raise NotFusable("a scan of something other than files")
    files = []
    for entry in paths:
        path = entry.get("inner") if isinstance(entry, dict) else entry
        if not isinstance(path, str) or not os.path.isabs(path) or "://" in path:
            raise NotFusable(f"a scan of {str(path)[:80]!r}, not a local file by its absolute path")
        files.append(os.path.normpath(path))
    return files


@functools.cache
def vocabulary() -> frozenset[str]:
    """Every key this polars writes in the plans of `_corpus`: native expressions and plan nodes only
    (about 30 ms, once per process)."""
    keys: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                keys.add(key)
                if key == _FIELDS and isinstance(value, dict):  # column names, not keys of polars'
                    for dtype in value.values():
                        collect(dtype)
                else:
                    collect(value)
        elif isinstance(node, list) and not (node and isinstance(node[0], int)):
            for item in node:
                collect(item)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the corpus names what this polars has, deprecated or not
        for item in _corpus():
            try:
                text = item.meta.serialize(format="json") if isinstance(item, pl.Expr) else serialize(item)
                collect(json.loads(text))
            except Exception:  # noqa: BLE001 - something this polars cannot write: its keys stay out
                continue
    return frozenset(keys - _NEVER)


def _corpus() -> Iterator[pl.Expr | pl.LazyFrame]:
    """Plans an operator builds from polars' own expressions, whose keys make the allow-list."""
    schema: dict[str, Any] = {
        "i": pl.Int64,
        "j": pl.Int32,
        "u": pl.UInt8,
        "f": pl.Float64,
        "g": pl.Float32,
        "s": pl.String,
        "b": pl.Boolean,
        "d": pl.Date,
        "t": pl.Datetime("us"),
        "z": pl.Datetime("ns", "UTC"),
        "dur": pl.Duration("us"),
        "tm": pl.Time,
        "c": pl.Categorical(),
        "l": pl.List(pl.Int64),
        "st": pl.Struct({"x": pl.Int64, "y": pl.String}),
        "dec": pl.Decimal(12, 2),
    }
    frame = pl.LazyFrame(schema=schema)
    i, f, s, t, d = pl.col("i"), pl.col("f"), pl.col("s"), pl.col("t"), pl.col("d")
    expressions: list[Callable[[], pl.Expr]] = [
        lambda: i + 1,
        lambda: i - f,
        lambda: i * 2,
        lambda: f / 3,
        lambda: i // 2,
        lambda: i % 3,
        lambda: i**2,
        lambda: -i,
        lambda: i.abs(),
        lambda: f.sqrt(),
        lambda: f.log(),
        lambda: f.log1p(),
        lambda: f.exp(),
        lambda: f.round(2),
        lambda: f.floor(),
        lambda: f.ceil(),
        lambda: f.clip(0, 1),
        lambda: i.sign(),
        lambda: f.is_nan(),
        lambda: f.is_finite(),
        lambda: f.fill_nan(0),
        lambda: i == 1,
        lambda: i != 1,
        lambda: i < 1,
        lambda: i <= 1,
        lambda: i > 1,
        lambda: i >= 1,
        lambda: (i > 1) & (f < 2),
        lambda: (i > 1) | pl.col("b"),
        lambda: ~pl.col("b"),
        lambda: (i > 1).xor(pl.col("b")),
        lambda: i.is_between(1, 5),
        lambda: i.is_in([1, 2]),
        lambda: i.is_null(),
        lambda: i.is_not_null(),
        lambda: i.fill_null(0),
        lambda: i.fill_null(strategy="forward"),
        lambda: f.fill_null(f.mean()),
        lambda: pl.coalesce(i, pl.col("j")),
        lambda: i.cast(pl.Float64),
        lambda: s.cast(pl.Int64, strict=False),
        lambda: t.cast(pl.Date),
        lambda: pl.col("c").cast(pl.String),
        lambda: pl.when(i > 1).then(f).when(i < 0).then(0.0).otherwise(None),
        lambda: pl.lit(1),
        lambda: pl.lit("x"),
        lambda: pl.lit(None),
        lambda: pl.lit(1.5),
        lambda: pl.lit(True),
        lambda: pl.lit([1, 2]),
        lambda: i.sum(),
        lambda: i.mean(),
        lambda: i.median(),
        lambda: i.min(),
        lambda: i.max(),
        lambda: i.std(),
        lambda: i.var(),
        lambda: i.count(),
        lambda: i.len(),
        lambda: i.n_unique(),
        lambda: i.first(),
        lambda: i.last(),
        lambda: i.quantile(0.5),
        lambda: i.mode(),
        lambda: i.arg_max(),
        lambda: i.arg_min(),
        lambda: i.product(),
        lambda: i.null_count(),
        lambda: pl.len(),
        lambda: pl.all().sum(),
        lambda: pl.col(pl.Int64).max(),
        lambda: pl.exclude("s"),
        lambda: pl.col("^i$"),
        lambda: i.cum_sum(),
        lambda: i.cum_max(),
        lambda: i.cum_min(),
        lambda: i.cum_count(),
        lambda: i.cum_prod(),
        lambda: i.diff(),
        lambda: i.shift(1),
        lambda: i.pct_change(),
        lambda: i.rank(),
        lambda: i.rank("dense", descending=True),
        lambda: i.sort(),
        lambda: i.sort_by(f),
        lambda: i.reverse(),
        lambda: i.head(3),
        lambda: i.tail(3),
        lambda: i.slice(1, 2),
        lambda: i.gather([0]),
        lambda: i.unique(),
        lambda: i.unique_counts(),
        lambda: i.value_counts(),
        lambda: i.is_duplicated(),
        lambda: i.is_unique(),
        lambda: i.is_first_distinct(),
        lambda: i.rle_id(),
        lambda: i.hash(1),
        lambda: i.top_k(2),
        lambda: i.bottom_k(2),
        lambda: i.implode(),
        lambda: i.rolling_mean(3),
        lambda: i.rolling_sum(3),
        lambda: i.rolling_max(3),
        lambda: i.rolling_min(3),
        lambda: i.rolling_std(3),
        lambda: i.ewm_mean(alpha=0.5),
        lambda: i.interpolate(),
        lambda: i.forward_fill(),
        lambda: i.backward_fill(),
        lambda: i.repeat_by(2),
        lambda: i.sum().over("s"),
        lambda: i.rank().over("s", "c"),
        lambda: i.cum_sum().over("s", order_by="t"),
        lambda: i.max().over(s, mapping_strategy="join"),
        lambda: pl.max_horizontal(i, f),
        lambda: pl.min_horizontal(i, f),
        lambda: pl.sum_horizontal(i, f),
        lambda: pl.mean_horizontal(i, f),
        lambda: pl.any_horizontal(pl.col("b"), i > 1),
        lambda: pl.all_horizontal(pl.col("b"), i > 1),
        lambda: pl.concat_str([s, s], separator="-"),
        lambda: pl.format("{}-{}", s, i),
        lambda: pl.struct(i, s),
        lambda: pl.concat_list(i, i),
        lambda: pl.int_range(0, pl.len()),
        lambda: s.str.len_chars(),
        lambda: s.str.len_bytes(),
        lambda: s.str.to_lowercase(),
        lambda: s.str.to_uppercase(),
        lambda: s.str.to_titlecase(),
        lambda: s.str.strip_chars(),
        lambda: s.str.strip_chars_start("x"),
        lambda: s.str.strip_chars_end("x"),
        lambda: s.str.starts_with("a"),
        lambda: s.str.ends_with("a"),
        lambda: s.str.contains("a"),
        lambda: s.str.contains("a", literal=True),
        lambda: s.str.replace("a", "b"),
        lambda: s.str.replace_all("a", "b"),
        lambda: s.str.slice(0, 2),
        lambda: s.str.head(2),
        lambda: s.str.tail(2),
        lambda: s.str.split(","),
        lambda: s.str.split_exact(",", 1),
        lambda: s.str.splitn(",", 2),
        lambda: s.str.extract(r"(\d+)", 1),
        lambda: s.str.extract_all(r"\d"),
        lambda: s.str.count_matches("a"),
        lambda: s.str.find("a"),
        lambda: s.str.pad_start(5, "0"),
        lambda: s.str.pad_end(5),
        lambda: s.str.zfill(5),
        lambda: s.str.to_date("%Y-%m-%d", strict=False),
        lambda: s.str.to_datetime("%Y-%m-%d %H:%M", strict=False),
        lambda: s.str.strptime(pl.Date, "%Y", strict=False),
        lambda: s.str.to_integer(strict=False),
        lambda: s.str.reverse(),
        lambda: s.str.json_path_match("$.a"),
        lambda: s.str.encode("hex"),
        lambda: s.str.contains_any(["a"]),
        lambda: s.str.replace_many(["a"], ["b"]),
        lambda: t.dt.year(),
        lambda: t.dt.month(),
        lambda: t.dt.day(),
        lambda: t.dt.hour(),
        lambda: t.dt.minute(),
        lambda: t.dt.second(),
        lambda: t.dt.weekday(),
        lambda: t.dt.week(),
        lambda: t.dt.ordinal_day(),
        lambda: t.dt.quarter(),
        lambda: t.dt.date(),
        lambda: t.dt.time(),
        lambda: t.dt.truncate("1h"),
        lambda: t.dt.round("1d"),
        lambda: t.dt.offset_by("1d"),
        lambda: t.dt.strftime("%Y"),
        lambda: t.dt.epoch("s"),
        lambda: t.dt.timestamp("ms"),
        lambda: pl.col("z").dt.convert_time_zone("Europe/Paris"),
        lambda: t.dt.replace_time_zone("UTC"),
        lambda: t.dt.month_start(),
        lambda: t.dt.month_end(),
        lambda: d.dt.add_business_days(1),
        lambda: (t - t).dt.total_seconds(),
        lambda: pl.col("dur").dt.total_minutes(),
        lambda: pl.datetime(2024, 1, 1),
        lambda: pl.date(2024, 1, 1),
        lambda: pl.duration(days=1),
        lambda: d.dt.is_leap_year(),
        lambda: pl.col("l").list.len(),
        lambda: pl.col("l").list.sum(),
        lambda: pl.col("l").list.mean(),
        lambda: pl.col("l").list.max(),
        lambda: pl.col("l").list.get(0, null_on_oob=True),
        lambda: pl.col("l").list.first(),
        lambda: pl.col("l").list.last(),
        lambda: pl.col("l").list.contains(1),
        lambda: pl.col("l").list.sort(),
        lambda: pl.col("l").list.unique(),
        lambda: pl.col("l").list.join(","),
        lambda: pl.col("l").list.slice(0, 1),
        lambda: pl.col("l").list.eval(pl.element() + 1),
        lambda: pl.col("l").list.explode(),
        lambda: pl.col("st").struct.field("x"),
        lambda: pl.col("st").struct.rename_fields(["a", "b"]),
        lambda: pl.col("st").struct.unnest(),
        lambda: pl.col("dec").cast(pl.Float64),
        lambda: i.alias("k"),
        lambda: i.name.suffix("_x"),
        lambda: i.name.prefix("x_"),
        lambda: i.name.keep(),
        lambda: i.filter(i > 1).sum(),
        lambda: i.append(i),
        lambda: i.explode(),
        lambda: i.to_physical(),
        lambda: i.drop_nulls(),
        lambda: i.drop_nans(),
        lambda: i.replace({1: 2}),
        lambda: i.replace_strict({1: 2}, default=0),
        lambda: i.cut([1, 2]),
        lambda: i.qcut([0.5]),
        lambda: i.search_sorted(1),
        lambda: i.entropy(),
        lambda: i.kurtosis(),
        lambda: i.skew(),
        lambda: pl.corr(i, f),
        lambda: pl.cov(i, f),
        lambda: i.peak_max(),
        lambda: i.is_sorted(),
        lambda: i.set_sorted(),
        lambda: i.bitwise_and(),
        lambda: i.reinterpret(),
        lambda: i.degrees(),
        lambda: f.sin(),
        lambda: f.cos(),
        lambda: f.tan(),
        lambda: f.arctan(),
        lambda: f.tanh(),
        lambda: f.cbrt(),
        lambda: f.log10(),
        lambda: i.mul(2),
        lambda: i.add(1),
        lambda: i.truediv(2),
        lambda: i.eq_missing(1),
        lambda: i.ne_missing(1),
        lambda: i.not_(),
        lambda: f.round_sig_figs(2),
        lambda: i.abs().alias("a"),
        lambda: i.max_by(f),
        lambda: i.min_by(f),
    ]
    for build in expressions:
        try:
            yield build()
        except (AttributeError, TypeError, ValueError, pl.exceptions.PolarsError):
            continue  # not in this polars: its keys stay out
    plans: list[Callable[[], pl.LazyFrame]] = [
        lambda: frame.with_columns(i.alias("x"), (f * 2).alias("y")),
        lambda: _resolved(frame.filter(i > 1)).select("i"),  # a plan whose schema was asked for
        lambda: frame.filter(i > 1).select("i", "s"),
        lambda: frame.group_by("s").agg(i.sum(), f.mean().alias("m"), pl.len()),
        lambda: frame.group_by("s", "d", maintain_order=True).agg(pl.col("i", "f").max()),
        lambda: frame.group_by_dynamic("t", every="1h").agg(i.sum()),
        lambda: frame.rolling("t", period="2h").agg(i.sum()),
        lambda: frame.sort("i", "s", descending=[True, False], nulls_last=True),
        lambda: frame.unique(subset=["s"], keep="first").drop("f").rename({"i": "k"}),
        lambda: frame.head(5).tail(2).slice(1, 3).limit(2),
        lambda: frame.with_row_index("n").drop_nulls("i").drop_nans("f").fill_null(0).fill_nan(0),
        lambda: frame.explode("l").unnest("st").unpivot(index="s", on=["i", "j"]),
        lambda: frame.join(frame, on="s", how="left", suffix="_r"),
        lambda: (
            frame.join(frame, on=["s", "d"], how="inner")
            .join(frame, on="i", how="anti")
            .join(frame, on="i", how="semi")
        ),
        lambda: frame.join(frame, how="cross").join(
            frame, left_on="i", right_on="j", how="full", coalesce=True
        ),
        lambda: frame.join_asof(frame, on="t", by="s", strategy="backward"),
        lambda: frame.join_where(frame, pl.col("i") < pl.col("j_right")),
        lambda: pl.concat([frame, frame], how="vertical_relaxed").select(pl.all().cast(pl.String)),
        lambda: pl.concat([frame.select("i"), frame.select("f")], how="horizontal"),
        lambda: pl.concat([frame, frame], how="diagonal"),
        lambda: frame.with_columns(pl.col(pl.String).str.strip_chars()).select(pl.selectors.numeric() * 2),
        lambda: frame.top_k(3, by="i").bottom_k(2, by="f").reverse().shift(1).with_columns(pl.first("i")),
        lambda: frame.select(
            pl.col("i").cum_sum().over(partition_by="s", order_by="t"), pl.col("f").rank().over("s")
        ),
        lambda: frame.cache().select("i").null_count(),
        lambda: frame.select(pl.col("s").value_counts(sort=True), pl.col("i").approx_n_unique()),
        lambda: (
            frame.merge_sorted(frame, key="i")
            .set_sorted("i")
            .drop_nulls()
            .select(pl.col("i").sort_by("f", "s"))
        ),
        lambda: frame.interpolate().gather_every(2),
    ]
    for make in plans:
        try:
            yield make()
        except (AttributeError, TypeError, ValueError, pl.exceptions.PolarsError):
            continue


def _resolved(frame: pl.LazyFrame) -> pl.LazyFrame:
    frame.collect_schema()
    return frame


class PlanRunner(Extension):
    """What runs a fused plan, in a restricted worker the host starts for the kit (`Workers.helper`).

    It holds no extension's code: every plan it runs comes from the host, checked there."""

    def run(
        self,
        plan: str,
        columns: Sequence[str] | None = None,
        n_rows: int | None = None,
        engine: str = "auto",
    ) -> pl.DataFrame:
        """Collect ``plan``'s ``columns`` (all when None), at most ``n_rows`` of them."""
        return _query(plan, columns, n_rows).collect(engine=engine)  # type: ignore[call-overload,no-any-return]

    def batches(
        self,
        plan: str,
        columns: Sequence[str] | None = None,
        n_rows: int | None = None,
        chunk_size: int | None = None,
    ) -> int:
        """Start ``plan`` on polars' streaming engine and return the number that `batch` takes to give its
        rows one batch at a time: a result larger than memory is never here whole."""
        if len(self._streams) >= MAX_STREAMS:
            raise ValueError(
                f"{MAX_STREAMS} streams are already open in this runner; read them to their end first"
            )
        frame = _query(plan, columns, n_rows)
        self._opened += 1
        self._streams[self._opened] = frame.collect_batches(chunk_size=chunk_size, engine="streaming")
        return self._opened

    def batch(self, stream: int) -> pl.DataFrame | None:
        """The next batch of rows of an open ``stream``; None once it is read to its end (it is then
        closed, as it is when the query fails)."""
        batches = self._streams.get(stream)
        if batches is None:
            raise ValueError(f"no open stream {stream!r} in this runner")
        try:
            return next(batches)
        except StopIteration:
            del self._streams[stream]
            return None
        except BaseException:
            del self._streams[stream]
            raise

    def drop(self, stream: int) -> None:
        """Close ``stream`` before its end (its query stops with it)."""
        self._streams.pop(stream, None)

    _opened = 0

    @functools.cached_property
    def _streams(self) -> dict[int, Iterator[pl.DataFrame]]:
        return {}


def _query(plan: str, columns: Sequence[str] | None, n_rows: int | None) -> pl.LazyFrame:
    frame = deserialize(plan)
    if columns is not None:
        frame = frame.select(list(columns))
    return frame if n_rows is None else frame.head(n_rows)
