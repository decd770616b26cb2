"""The base class of an operator: a sync data transform from one LazyFrame to another."""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from symphony_core import Extension


class Operator(Extension):
    """Base class of an operator extension; subclasses implement `apply`.

    `apply` only builds a lazy query: it must not collect. The pipeline that runs operators collects
    once per sink, so composed operators cost what the same hand-written query costs.
    """

    kind: ClassVar[str] = "operator"

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Return the lazy query that transforms ``frame``."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply(frame)")
