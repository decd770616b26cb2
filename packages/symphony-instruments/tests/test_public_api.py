"""The package's public face: every exported name resolves, and an instrument is a few lines."""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import symphony_instruments
from symphony_instruments import Batch, Instrument, InstrumentConfig, InstrumentError, SymphonyError


def test_every_exported_name_is_the_cores_own_object_or_defined_in_this_package():
    import symphony_core

    assert len(set(symphony_instruments.__all__)) == len(symphony_instruments.__all__)
    own = []
    for name in symphony_instruments.__all__:
        value = getattr(symphony_instruments, name)
        if name == "__version__":
            assert isinstance(value, str), value
            assert value[0].isdigit(), value
        elif name in symphony_core.__all__:
            assert value is getattr(symphony_core, name), f"{name} shadows the core's {name}"
        elif callable(value) and name != "Batch":  # Batch is a type alias of a collections.abc type
            assert value.__module__ == "symphony_instruments", name
            assert value.__doc__, f"{name} has no docstring"
            own.append(name)
    assert {"Instrument", "OnnxInstrument", "Metrics", "ModelConfig", "Overloaded"} <= set(own)


def test_the_request_errors_belong_to_the_symphony_error_family():
    for name in ("Overloaded", "DeadlineExceeded", "InvalidInput", "BatcherClosed", "ModelMismatch"):
        assert issubclass(getattr(symphony_instruments, name), SymphonyError), name
    assert issubclass(symphony_instruments.DeadlineExceeded, TimeoutError)
    assert issubclass(symphony_instruments.InvalidInput, ValueError)


def _add_one_model() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add_one", [x], [y], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_a_hand_written_instrument_loads_predicts_through_the_batcher_and_unloads(context):
    class AddOne(Instrument):
        async def load(self) -> None:
            self.session = ort.InferenceSession(_add_one_model(), providers=["CPUExecutionProvider"])

        def predict(self, batch: Batch) -> Batch:
            (y,) = self.session.run(None, {"x": batch["x"]})
            return {"y": y}

        async def unload(self) -> None:
            self.session = None

    manifest = {
        "contributes": {
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["n", 2]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": ["n", 2]}],
        }
    }
    instrument = AddOne()

    async def scenario():
        await instrument.activate(context(manifest))
        batch = await instrument.infer({"x": np.arange(6, dtype=np.float32).reshape(3, 2)})
        item = await instrument.infer({"x": [1.0, 2.0]})  # one item, as plain numbers
        await instrument.deactivate()
        return batch, item

    batch, item = asyncio.run(scenario())

    np.testing.assert_array_equal(batch["y"], np.arange(6, dtype=np.float32).reshape(3, 2) + 1)
    np.testing.assert_array_equal(item["y"], np.array([2.0, 3.0], dtype=np.float32))
    assert instrument.session is None


class AddOne(Instrument[InstrumentConfig]):
    async def load(self) -> None:
        self.session = ort.InferenceSession(_add_one_model(), providers=["CPUExecutionProvider"])

    def predict(self, batch: Batch) -> Batch:
        (y,) = self.session.run(None, {"x": batch["x"]})
        return {"y": y}

    async def unload(self) -> None:
        self.session = None


ADD_ONE = {
    "id": "test.add-one",
    "contributes": {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["n", 2]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["n", 2]}],
    },
}


def test_an_instrument_made_with_create_loads_in_async_with_and_unloads_on_the_way_out(tmp_path):
    instrument = AddOne.create({"warmup_batches": 0}, manifest=ADD_ONE, data_dir=tmp_path)

    assert instrument.contributions.inputs[0].describe() == "x float32 [n, 2]"
    assert instrument.config.warmup_batches == 0
    assert not hasattr(instrument, "session")  # create() does not load the model

    async def scenario():
        async with instrument as active:
            return await active.infer({"x": [1.0, 2.0]})

    np.testing.assert_array_equal(asyncio.run(scenario())["y"], np.array([2.0, 3.0], dtype=np.float32))
    assert instrument.session is None


def test_an_instrument_no_host_activated_says_how_to_start_it():
    with pytest.raises(InstrumentError) as caught:
        AddOne().config  # noqa: B018 - reading it is the point

    assert str(caught.value).startswith("AddOne is not active")
    assert "AddOne.create(" in (caught.value.hint or "")
