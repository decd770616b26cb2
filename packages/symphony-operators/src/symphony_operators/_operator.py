"""The base class of an operator: a sync data transform from one LazyFrame to another."""

from __future__ import annotations

import copy
import dataclasses
import typing
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import polars as pl
from polars.io.plugins import register_io_source
from pydantic import BaseModel, ValidationError

from symphony_core import Config, ConfigError, Context, Extension

from ._errors import ContractError
from ._schema import Contributions, read_contributions
from ._standalone import not_active, problems, served_config, standalone_context

ConfigT = TypeVar("ConfigT", bound=Config)
OperatorT = TypeVar("OperatorT", bound="Operator[Any]")


class Operator(Extension, Generic[ConfigT]):
    """Base class of an operator extension; subclasses implement `apply`.

    `apply` only builds a lazy query: it must not collect. The pipeline that runs operators collects
    once per run, so composed operators cost what the same hand-written query costs. The columns the
    operator reads and makes are declared in its manifest (``[[contributes.input]]`` and
    ``[[contributes.output]]``) and available as ``self.contributions``.

    ``self.config`` is the manifest's ``config`` model (without one, the defaults of ``config_model``).
    Both raise `OperatorError` until a host activates the operator or `create` makes it.
    """

    kind: ClassVar[str] = "operator"
    config_model: ClassVar[type[Config]] = Config
    """The config used when the manifest names none: by default the class's config parameter
    (``ScorerConfig`` in ``class Scorer(Operator[ScorerConfig])``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_model" not in cls.__dict__:
            for base in cls.__dict__.get("__orig_bases__", ()):
                given = typing.get_args(base)[0] if typing.get_origin(base) is Operator else None
                if isinstance(given, type) and issubclass(given, Config):
                    cls.config_model = given

    _config: ConfigT | None = None
    _contributions: Contributions | None = None

    def activate(self, context: Context) -> None:
        """Keep the context and check the declared schemas in the manifest; subclasses call ``super()``.

        An invalid ``[contributes]`` fails the activation, with each bad field named.
        """
        super().activate(context)
        self._contributions = read_contributions(context.manifest, extension=context.id)

    @property
    def config(self) -> ConfigT:
        """The validated config: the manifest's config model, or the defaults of ``config_model``."""
        if self._config is None:
            self._config = served_config(self._context("config"), self.config_model)
        return self._config

    @property
    def contributions(self) -> Contributions:
        """The input and output columns the manifest's ``[contributes]`` table declares."""
        if self._contributions is None:
            context = self._context("contributions")
            self._contributions = read_contributions(context.manifest, extension=context.id)
        return self._contributions

    @property
    def contract(self) -> Contributions:
        """Deprecated: use `contributions`."""
        warnings.warn(
            "Operator.contract is deprecated: use Operator.contributions", DeprecationWarning, stacklevel=2
        )
        return self.contributions

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Return the lazy query that transforms ``frame``."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply(frame)")

    @property
    def id(self) -> str:
        """The operator's extension id (its class name before it is activated)."""
        context = getattr(self, "context", None)
        return context.id if context is not None else type(self).__name__

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

    def query_plan(
        self, frame: pl.DataFrame, config: Mapping[str, Any] | None = None, schema: bool = False
    ) -> Any:
        """polars' plan of `query` on an empty frame of ``frame``'s schema, as JSON text (nothing is read;
        None when polars cannot write it); with ``schema``, ``[query_schema's frame, the plan, polars'
        version]``: what a host asks of an isolated step (it fuses plans of its own polars only).

        A host fuses the plan with the plans of the steps around it, after checking it is made of native
        expressions only, and runs them together in a restricted runner (see ``_fused``).
        """
        from ._fused import serialize

        query = self.query(frame.clear().lazy(), config)
        try:
            text: str | None = serialize(query)
        except pl.exceptions.PolarsError:  # a Python function polars cannot write: the step runs on its own
            text = None
        return [query.collect_schema().to_frame(), text, pl.__version__] if schema else text

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
        if not type(current).model_fields:
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
                problems=problems(exc),
            ) from None
        clone = copy.copy(self)
        clone.context = dataclasses.replace(self.context, config=config)
        clone._config = config
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
        ``config`` is a config instance, or values for the model the manifest names (``config_model``
        when it names none). No permission is checked: code run this way is trusted as the caller is.
        """
        context = standalone_context(
            cls, config, manifest=manifest, data_dir=data_dir, cache_dir=cache_dir, model=cls.config_model
        )
        operator = cls()
        operator.activate(context)
        return operator

    def _context(self, what: str) -> Context:
        context: Context | None = getattr(self, "context", None)
        if context is None:
            raise not_active(self, what)
        return context

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


def _merge(base: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in values.items():
        below = merged.get(key)
        merged[key] = (
            _merge(below, value) if isinstance(below, dict) and isinstance(value, Mapping) else value
        )
    return merged
