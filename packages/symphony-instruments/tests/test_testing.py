"""The instruments' testing helpers: requests made from a manifest's declared inputs."""

import numpy as np
import pytest

from symphony_instruments import ManifestError
from symphony_instruments._contributions import InputChecker, read_contributions
from symphony_instruments.testing import sample_inputs

MANIFEST = {
    "contributes": {
        "inputs": [
            {"name": "pixels", "dtype": "float32", "shape": ["batch", 8, "width"]},
            {"name": "ids", "dtype": "int64", "shape": ["batch"]},
            {"name": "mask", "dtype": "bool", "shape": ["batch", 3]},
            {"name": "text", "dtype": "string", "shape": ["batch"]},
        ],
        "outputs": [{"name": "label", "dtype": "int64", "shape": ["batch"]}],
    }
}


def test_sample_inputs_are_what_the_declared_inputs_admit():
    request = sample_inputs(MANIFEST, items=3)
    checker = InputChecker(read_contributions(MANIFEST).inputs, reject_nan=True, extension="tests.sample")

    checked, items, _ = checker.check(request)

    assert items == 3
    assert {name: (array.dtype.kind, array.shape) for name, array in checked.items()} == {
        "pixels": ("f", (3, 8, 2)),
        "ids": ("i", (3,)),
        "mask": ("b", (3, 3)),
        "text": ("O", (3,)),
    }
    assert np.all((request["pixels"] >= -1) & (request["pixels"] < 1))
    assert np.array_equal(sample_inputs(MANIFEST, items=3)["pixels"], request["pixels"])


def test_a_model_that_takes_one_item_gets_one_item():
    manifest = {
        "contributes": {
            **MANIFEST["contributes"],
            "inputs": [{"name": "x", "dtype": "float64", "shape": [1, 4]}],
        }
    }

    assert sample_inputs(manifest, items=5)["x"].shape == (1, 4)


def test_a_manifest_without_declared_inputs_is_refused_with_its_fields():
    with pytest.raises(ManifestError, match=r"contributes\.inputs"):
        sample_inputs({"contributes": {}})
    with pytest.raises(ValueError, match="items must be at least 1"):
        sample_inputs(MANIFEST, items=0)
