"""What the misbehaving operators declare, and the one honest thing each does (the host tests are at the root)."""

from __future__ import annotations

import polars as pl
from symphony_example_misbehaving.greedy import GreedyStats


def test_the_greedy_operator_counts_rows_as_its_manifest_declares():
    operator = GreedyStats.create()
    result = operator.query(pl.LazyFrame({"a": [1, 2, 3]})).collect()

    assert result.to_dicts() == [{"rows": 3}]
    assert [column.name for column in operator.contributions.output] == ["rows"]
    asked = {permission["type"] for permission in operator.context.manifest["permissions"]}
    assert asked == {"fs.read", "net.connect", "env"}
