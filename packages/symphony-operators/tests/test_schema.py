"""Declared schemas: the manifest's ``[contributes]`` validated by this package's models."""

from __future__ import annotations

import polars as pl
import pytest

from symphony_operators import Column, ContractError, Contributions, Operator, parse_dtype


@pytest.mark.parametrize(
    ("text", "dtype"),
    [
        ("Float64", pl.Float64()),
        ("Utf8", pl.String()),
        ("Datetime(time_unit='us', time_zone='UTC')", pl.Datetime("us", "UTC")),
        ("List(Int64)", pl.List(pl.Int64)),
        ("Decimal(10, 2)", pl.Decimal(10, 2)),
    ],
)
def test_dtypes_are_written_as_polars_names_them(text, dtype):
    assert parse_dtype(text) == dtype


@pytest.mark.parametrize("text", ["float", "Float64(", "__import__('os')", "DataType", "List(nope)"])
def test_anything_else_is_not_a_dtype(text):
    with pytest.raises(ValueError, match="polars dtype"):
        parse_dtype(text)


def test_a_parametric_dtype_without_parameters_accepts_any_of_its_kind():
    column = Column(name="at", dtype="Datetime")

    assert column.polars_dtype == pl.Datetime("ms", "Europe/Paris")
    assert Column(name="at", dtype="Datetime(time_unit='us')").polars_dtype != pl.Datetime("ms")


def test_a_bad_contract_fails_activation_naming_each_field():
    class Anything(Operator):
        def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
            return frame

    contributes = {
        "input": [{"name": "dep_delay", "dtype": "float"}, {"name": "x", "dtype": "Int64", "requird": True}],
        "outputs": [],
    }

    with pytest.raises(ContractError) as caught:
        Anything.create(manifest={"id": "test.bad", "contributes": contributes})

    text = str(caught.value)
    assert caught.value.extension == "test.bad"
    assert "contributes.input[0].dtype" in text
    assert "contributes.input[1].requird" in text
    assert "contributes.outputs" in text


def test_a_column_declared_twice_is_refused():
    with pytest.raises(ValueError, match="input: column\\(s\\) x declared more than once"):
        Contributions.model_validate(
            {"input": [{"name": "x", "dtype": "Int64"}, {"name": "x", "dtype": "Int32"}]}
        )


def test_an_operator_created_from_its_package_reads_the_manifest_beside_it(site):
    site.install(
        "acme-pass",
        entry_points={"acme.pass": "acme_pass:Pass"},
        files={
            "acme_pass/__init__.py": (
                "from symphony_operators import Operator\n\n\n"
                "class Pass(Operator):\n    def apply(self, frame):\n        return frame\n"
            ),
            "acme_pass/symphony.toml": (
                'id = "acme.pass"\nkind = "operator"\nname = "Pass"\nsummary = "Passes rows."\n'
                'targets = "symphony-operators>=0.1,<0.2"\n\n'
                '[[contributes.input]]\nname = "x"\ndtype = "Int64"\n'
            ),
        },
    )
    from acme_pass import Pass  # type: ignore[import-not-found]

    operator = Pass.create()

    assert operator.id == "acme.pass"
    assert [(c.name, c.dtype, c.required) for c in operator.contributions.input] == [("x", "Int64", True)]
