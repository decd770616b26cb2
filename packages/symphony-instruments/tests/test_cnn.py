"""CNNs the ``onnx`` wheel ships (SqueezeNet, ResNet50 with constant weights), served by `OnnxInstrument`.

Their batch axis is fixed to 1, so the batcher runs one item per batch; the answers must equal the
reference outputs shipped beside each model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnx
import onnx.backend.test
import pytest
from onnx import numpy_helper

from symphony_instruments import InvalidInput, ModelConfig, OnnxInstrument

LIGHT = Path(onnx.backend.test.__file__).parent / "data" / "light"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "input_name", "output_name", "output_shape"),
    [
        ("light_squeezenet", "data_0", "softmaxout_1", [1, 1000, 1, 1]),
        ("light_resnet50", "gpu_0/data_0", "gpu_0/softmax_1", [1, 1000]),
    ],
)
def test_a_shipped_cnn_answers_concurrent_requests_with_its_reference_output(
    model, input_name, output_name, output_shape, context
):
    reference = numpy_helper.to_array(onnx.load_tensor(str(LIGHT / f"{model}_output_0.pb")))
    manifest = {
        "contributes": {
            "inputs": [{"name": input_name, "dtype": "float32", "shape": [1, 3, 224, 224]}],
            "outputs": [{"name": output_name, "dtype": "float32", "shape": output_shape}],
        }
    }
    images = np.random.default_rng(0).random((6, 3, 224, 224), dtype=np.float32)

    async def scenario():
        instrument = OnnxInstrument()
        await instrument.activate(context(manifest, ModelConfig(path=str(LIGHT / f"{model}.onnx"))))
        answers = await asyncio.gather(*(instrument.infer({input_name: image}) for image in images))
        with pytest.raises(InvalidInput, match="this model takes one at a time"):
            await instrument.infer({input_name: images[:2]})
        metrics = instrument.metrics()
        await instrument.deactivate()
        return answers, metrics

    answers, metrics = asyncio.run(scenario())

    for answer in answers:
        np.testing.assert_allclose(answer[output_name], reference[0], rtol=1e-3, atol=1e-7)
    assert metrics.batch_sizes == {1: 6}
