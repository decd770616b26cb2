import polars as pl
import pytest

import symphony_operators
from symphony_operators import Operator


def test_every_exported_name_resolves():
    for name in symphony_operators.__all__:
        assert getattr(symphony_operators, name) is not None, name


def test_an_operator_builds_a_lazy_query_without_collecting():
    class Doubling(Operator):
        def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
            return frame.with_columns((pl.col("x") * 2).alias("y"))

    query = Doubling().apply(pl.LazyFrame({"x": [1, 2, 3]}))

    assert isinstance(query, pl.LazyFrame)
    assert query.collect()["y"].to_list() == [2, 4, 6]


def test_an_operator_without_apply_says_what_is_missing():
    class Empty(Operator):
        pass

    with pytest.raises(NotImplementedError, match="Empty must implement apply"):
        Empty().apply(pl.LazyFrame())
