"""The base class of an operator: a sync data transform from one LazyFrame to another."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import logging
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import polars as pl
from polars.io.plugins import register_io_source
from pydantic import BaseModel, ValidationError

from symphony_core import ConfigError, Context, ErrorDetail, Extension, read_manifest

from ._errors import ContractError
from ._schema import Contract

OperatorT = TypeVar("OperatorT", bound="Operator")

MANIFEST_FILE = "symphony.toml"


class Operator(Extension):
    """Base class of an operator extension; subclasses implement `apply`.

    `apply` only builds a lazy query: it must not collect. The pipeline that runs operators collects
    once per run, so composed operators cost what the same hand-written query costs. The columns the
    operator reads and makes are declared in its manifest (``[[contributes.input]]`` and
    ``[[contributes.output]]``) and available as `contract` once it is active.
    """

    kind: ClassVar[str] = "operator"

    _contract: Contract | None = None

    def activate(self, context: Context) -> None:
        """Keep the context and check the declared schemas in the manifest; subclasses call ``super()``.

        An invalid ``[contributes]`` fails the activation, with each bad field named.
        """
        super().activate(context)
        self._contract = Contract.from_manifest(context.manifest, extension=context.id)

    @property
    def contract(self) -> Contract:
        """The input and output columns the manifest declares (empty before activation)."""
        if self._contract is None:
            context = getattr(self, "context", None)
            if context is None:
                return Contract()
            self._contract = Contract.from_manifest(context.manifest, extension=context.id)
        return self._contract

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Return the lazy query that transforms ``frame``."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply(frame)")

    @property
    def id(self) -> str:
        """The operator's extension id (its class name before it is activated)."""
        context = getattr(self, "context", None)
        return context.id if context is not None else type(self).__name__

    @property
    def config(self) -> Any:
        """The operator's validated config (an instance of its `Config` model), or None if it has none."""
        return self.context.config

    def query(self, frame: pl.LazyFrame, config: Mapping[str, Any] | None = None) -> pl.LazyFrame:
        """Build this operator's query on ``frame``, with ``config`` values on top of its own config.

        This is what pipelines call (through the host for installed operators, so that the operator's
        code runs under the permissions granted to it). It never collects.
        """
        operator = self.configured(config) if config else self
        result = operator.apply(frame)
        if not isinstance(result, pl.LazyFrame):
            raise ContractError(
                f"apply() returned {type(result).__name__}, not a LazyFrame",
                extension=self.id,
                hint="build a lazy query and return it; never collect inside an operator",
            )
        return result

    def query_schema(self, frame: pl.DataFrame, config: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """An empty frame with the columns `query` makes from a frame shaped like ``frame``, from the plan
        alone (nothing is collected).

        With `query_reads` and `query_run`, this is what a host calls in an isolated operator's worker
        to run it as a pipeline step: frames cross, never queries.
        """
        return pl.DataFrame(schema=self.query(frame.lazy(), config).collect_schema())

    def query_reads(
        self,
        frame: pl.DataFrame,
        config: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[str]:
        """The columns of a frame shaped like ``frame`` that `query` reads to make ``columns`` (all it
        makes when None), as polars' optimizer prunes them; every column when that cannot be found."""
        asked: list[list[str] | None] = []

        def nothing(
            with_columns: list[str] | None,
            predicate: pl.Expr | None,
            n_rows: int | None,
            batch_size: int | None,
        ) -> Iterator[pl.DataFrame]:
            asked.append(with_columns)
            if predicate is not None:  # a filter pushed down to the frame reads its columns too
                asked.append(predicate.meta.root_names())
            yield from ()

        source = register_io_source(io_source=nothing, schema=frame.schema)
        query = self.query(source, config)
        try:
            (query if columns is None else query.select(columns)).collect()
        except Exception:  # noqa: BLE001 - its query does not run on no rows (a function of its own): all columns
            return list(frame.columns)
        read: set[str] = set()
        for names in asked:
            read.update(frame.columns if names is None else names)
        return [name for name in frame.columns if name in read]

    def query_run(
        self,
        frame: pl.DataFrame,
        config: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
        schema: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Run `query` on ``frame`` and collect ``columns`` of its result (all when None).

        ``schema`` (an empty frame) is the whole input's schema when ``frame`` holds only the columns
        `query_reads` named: the others are there for the plan to resolve, as nulls nothing reads.
        """
        given = frame.lazy()
        if schema is not None:
            given = given.select(
                pl.col(name) if name in frame.columns else pl.lit(None, dtype).alias(name)
                for name, dtype in schema.schema.items()
            )
        query = self.query(given, config)
        return (query if columns is None else query.select(columns)).collect()

    def configured(self: OperatorT, values: Mapping[str, Any]) -> OperatorT:
        """A copy of this operator whose config has ``values`` merged over its own, validated.

        Tables merge key by key; the copy shares everything else with this operator (what ``activate``
        opened), and this operator is unchanged.
        """
        current = self.config
        if not isinstance(current, BaseModel):
            raise ConfigError(
                f"has no config, so it cannot take {sorted(values)}",
                extension=self.id,
                hint="remove `config` from this step, or give the operator a Config model in its manifest",
            )
        merged = _merge(current.model_dump(), values)
        try:
            config = type(current).model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(
                "invalid config:",
                extension=self.id,
                hint="fix the values given in the pipeline (each field is listed above)",
                problems=_problems(exc),
            ) from None
        clone = copy.copy(self)
        clone.context = dataclasses.replace(self.context, config=config)
        return clone

    @classmethod
    def create(
        cls: type[OperatorT],
        config: BaseModel | Mapping[str, Any] | None = None,
        *,
        manifest: Mapping[str, Any] | None = None,
        data_dir: Path | None = None,
        cache_dir: Path | None = None,
    ) -> OperatorT:
        """Create and activate the operator outside a host: in a script, a notebook or a test.

        ``manifest`` defaults to the ``symphony.toml`` beside the class's module (what a host would read);
        a dict given instead needs only the keys that matter here (``id``, ``contributes``, ``config``).
        ``config`` is a Config instance, or values for the model the manifest names (defaults if None).
        No permission is checked: code run this way is trusted as the caller is.
        """
        data = dict(manifest) if manifest is not None else _packaged_manifest(cls)
        ext_id = str(data.get("id") or _local_id(cls))
        root = Path(tempfile.gettempdir()) / "symphony-operators" / ext_id
        context = Context(
            id=ext_id,
            version=str(data.get("version") or "0"),
            manifest=data,
            config=_config(config, data.get("config"), ext_id),
            data_dir=data_dir or root / "data",
            cache_dir=cache_dir or root / "cache",
            logger=logging.getLogger(f"symphony.ext.{ext_id}"),
        )
        for folder in (context.data_dir, context.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)
        operator = cls()
        operator.activate(context)
        return operator

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


def _packaged_manifest(cls: type[Operator]) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    folder = Path(module.__file__).parent if module is not None and module.__file__ else None
    if folder is None or not (folder / MANIFEST_FILE).is_file():
        return {}
    return read_manifest(folder / MANIFEST_FILE).model_dump(mode="json", by_alias=True, exclude_none=True)


def _local_id(cls: type[Operator]) -> str:
    name = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
    return f"local.{name}"


def _config(given: BaseModel | Mapping[str, Any] | None, reference: Any, ext_id: str) -> Any:
    if isinstance(given, BaseModel):
        return given
    if not isinstance(reference, str):
        if given:
            raise ConfigError(
                "has no config model, so it cannot take config values",
                extension=ext_id,
                hint="pass a Config instance, or name the model in the manifest: config = 'module:Class'",
            )
        return None
    module_name, _, attribute = reference.partition(":")
    model: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        model = getattr(model, part)
    try:
        return model.model_validate(dict(given or {}))
    except ValidationError as exc:
        raise ConfigError("invalid config:", extension=ext_id, problems=_problems(exc)) from None


def _merge(base: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in values.items():
        below = merged.get(key)
        merged[key] = (
            _merge(below, value) if isinstance(below, dict) and isinstance(value, Mapping) else value
        )
    return merged


def _problems(exc: ValidationError) -> list[ErrorDetail]:
    return [ErrorDetail(_dotted(error["loc"]), error["msg"], error["type"]) for error in exc.errors()]


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"
