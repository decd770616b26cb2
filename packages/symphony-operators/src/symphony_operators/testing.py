"""Test an operator in a real host: the pytest plugin's `Harness`, plus helpers for operators.

The fixtures come with Symphony's pytest plugin, which pytest loads by itself: ``symphony_host`` (a
`Harness` in a temporary ``SYMPHONY_HOME``) and ``symphony_home``. Install the project under test first
(``pip install -e .``) so the host finds it through its entry point::

    import polars as pl
    from symphony_operators.testing import Harness, apply

    def test_it_totals(symphony_host: Harness) -> None:
        symphony_host.start("acme.totals")
        result = apply(symphony_host, "acme.totals", pl.DataFrame({"key": ["a"], "value": [1.0]}))
        symphony_host.assert_within_permissions("acme.totals")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from symphony_core import Harness

from ._schema import check, read_contributions

__all__ = ["Harness", "apply"]


def apply(
    harness: Harness,
    extension: str,
    frame: pl.DataFrame | pl.LazyFrame,
    config: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Run an active operator on ``frame`` through the host, as a pipeline step would, and collect.

    ``config`` values go over the operator's own config for this call only. The frame is checked
    against the input columns the manifest declares, and the result against the declared output
    columns (and against collecting inside the operator): a mismatch fails with an `AssertionError`
    naming each column.
    """
    manifest = harness.inspect(extension).manifest or {}
    declared = read_contributions(manifest, extension=extension)
    lazy = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    _expect(check(lazy.collect_schema(), declared.input, operator=extension, side="input", where="the test"))
    result: pl.LazyFrame = harness.call(extension, "query", lazy, config)
    _expect(check(result.collect_schema(), declared.output, operator=extension, side="output"))
    return result.collect()


def _expect(problems: list[Any]) -> None:
    if problems:
        raise AssertionError(
            "the frame does not match the declared columns:\n" + "\n".join(f"  - {p}" for p in problems)
        )
