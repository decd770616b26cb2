import asyncio

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

import symphony_instruments
from symphony_instruments import Batch, Instrument


def test_every_exported_name_resolves():
    for name in symphony_instruments.__all__:
        assert getattr(symphony_instruments, name) is not None, name


def _add_one_model() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add_one", [x], [y], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_an_instrument_predicts_a_batch_with_a_real_onnxruntime_session():
    class AddOne(Instrument):
        def __init__(self) -> None:
            self.session = ort.InferenceSession(_add_one_model(), providers=["CPUExecutionProvider"])

        async def predict(self, batch: Batch) -> Batch:
            (y,) = self.session.run(None, {"x": batch["x"]})
            return {"y": y}

    batch = {"x": np.arange(6, dtype=np.float32).reshape(3, 2)}
    outputs = asyncio.run(AddOne().predict(batch))

    np.testing.assert_array_equal(outputs["y"], batch["x"] + 1)
