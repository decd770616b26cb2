"""`OnnxInstrument` on real models: scikit-learn conversions, the hash check, paths, providers, threads."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil

import numpy as np
import pytest

from symphony_instruments import (
    BatchingConfig,
    ManifestError,
    ModelConfig,
    ModelError,
    ModelHashMismatch,
    ModelMismatch,
    OnnxInstrument,
)


def _serve(context, manifest, config, work):
    """Activate an OnnxInstrument, run ``work(instrument)`` on the loop, and deactivate it."""
    instrument = OnnxInstrument()

    async def scenario():
        await instrument.activate(context(manifest, config))
        try:
            return await work(instrument)
        finally:
            await instrument.deactivate()

    return asyncio.run(scenario()), instrument


@pytest.mark.parametrize("dataset", ["digits", "iris"])
def test_a_converted_scikit_learn_model_answers_each_request_as_scikit_learn_does(
    request, dataset, context, kit
):
    model = request.getfixturevalue(dataset)
    config = ModelConfig(path=str(model.path), sha256=hashlib.sha256(model.path.read_bytes()).hexdigest())
    manifest = kit.classifier_manifest(model.features.shape[1], model.classes)

    async def every_row_concurrently(instrument):
        return await asyncio.gather(*(instrument.infer({"input": row}) for row in model.features))

    answers, _ = _serve(context, manifest, config, every_row_concurrently)

    labels = np.array([answer["label"] for answer in answers])
    probabilities = np.stack([answer["probabilities"] for answer in answers])
    np.testing.assert_array_equal(labels, model.estimator.predict(model.features))
    np.testing.assert_allclose(probabilities, model.estimator.predict_proba(model.features), atol=1e-4)
    assert labels.shape == (len(model.features),)  # one bare item in, one bare answer out


def test_a_model_file_whose_hash_differs_is_refused_naming_the_file_and_both_hashes(digits, context, kit):
    wrong = "0" * 64
    config = ModelConfig(path=str(digits.path), sha256=wrong)
    actual = hashlib.sha256(digits.path.read_bytes()).hexdigest()

    with pytest.raises(ModelHashMismatch) as refused:
        _serve(context, kit.classifier_manifest(64, 10), config, lambda instrument: asyncio.sleep(0))

    message = str(refused.value)
    assert str(digits.path) in message
    assert wrong in message
    assert actual in message
    assert (refused.value.file, refused.value.expected, refused.value.actual) == (
        str(digits.path),
        wrong,
        actual,
    )


def test_relative_and_data_paths_are_inside_the_extensions_data_folder(digits, context, kit):
    manifest = kit.classifier_manifest(64, 10)
    folder = context(manifest).data_dir
    (folder / "models").mkdir()
    shutil.copy(digits.path, folder / "models" / "digits.onnx")

    async def path_of(instrument):
        return instrument.model_path

    for spelled in ("models/digits.onnx", "{data}/models/digits.onnx"):
        path, _ = _serve(context, manifest, ModelConfig(path=spelled), path_of)
        assert path == folder / "models" / "digits.onnx"

    with pytest.raises(ModelError, match=r"model file .*missing\.onnx does not exist"):
        _serve(context, manifest, ModelConfig(path="missing.onnx"), path_of)


def test_without_a_config_the_defaults_serve_model_onnx_from_the_data_folder(digits, context, kit):
    manifest = kit.classifier_manifest(64, 10)
    shutil.copy(digits.path, context(manifest).data_dir / "model.onnx")

    async def one(instrument):
        return await instrument.infer({"input": digits.features[:3]})

    answer, _ = _serve(context, manifest, None, one)

    np.testing.assert_array_equal(answer["label"], digits.estimator.predict(digits.features[:3]))


def test_asking_for_cuda_where_it_is_missing_falls_back_to_the_cpu_and_says_so(digits, context, kit, caplog):
    config = ModelConfig(path=str(digits.path), providers=("cuda", "cpu"))

    async def providers(instrument):
        return instrument.providers

    with caplog.at_level(logging.WARNING, logger="symphony.ext.tests.model"):
        used, _ = _serve(context, kit.classifier_manifest(64, 10), config, providers)

    assert used == ["CPUExecutionProvider"]
    (warning,) = [record.getMessage() for record in caplog.records]
    assert "CUDAExecutionProvider asked for, but this onnxruntime cannot use it" in warning
    assert "falling back to CPUExecutionProvider" in warning
    assert "onnxruntime-gpu" in warning


def test_thread_settings_reach_the_onnxruntime_session(models, context, kit):
    config = ModelConfig(path=str(models / "mlp.onnx"), intra_op_threads=1, inter_op_threads=2)

    async def options(instrument):
        return instrument.session.get_session_options()

    got, _ = _serve(context, kit.MLP_MANIFEST, config, options)

    assert (got.intra_op_num_threads, got.inter_op_num_threads) == (1, 2)


def test_a_manifest_that_does_not_describe_the_model_fails_activation_naming_each_difference(digits, context):
    manifest = {
        "contributes": {
            "inputs": [{"name": "input", "dtype": "float64", "shape": ["batch", 32]}],
            "outputs": [
                {"name": "label", "dtype": "int64", "shape": ["batch"]},
                {"name": "scores", "dtype": "float32", "shape": ["batch", 10]},
            ],
        }
    }

    with pytest.raises(ModelMismatch) as refused:
        _serve(context, manifest, ModelConfig(path=str(digits.path)), lambda instrument: asyncio.sleep(0))

    message = str(refused.value)
    assert "input 'input': declared dtype float64, the model's is float32" in message
    assert "input 'input' axis 1: declared size 32, the model's is 64" in message
    assert (
        "output 'scores' is declared, but the model has no such output (it has: label, probabilities)"
        in message
    )


def test_a_dynamic_axis_the_model_fixes_is_a_mismatch(digits, context, kit):
    manifest = kit.classifier_manifest(64, 10)
    manifest["contributes"]["inputs"][0]["shape"] = ["batch", "features"]

    with pytest.raises(
        ModelMismatch, match=r"axis 1: declared dynamic \('features'\), but the model fixes it to 64"
    ):
        _serve(context, manifest, ModelConfig(path=str(digits.path)), lambda instrument: asyncio.sleep(0))


def test_an_invalid_contributes_table_is_a_manifest_error_naming_the_field(digits, context):
    manifest = {
        "contributes": {
            "inputs": [{"name": "input", "dtype": "float", "shape": ["batch", 0]}],
            "output": [],
        }
    }

    with pytest.raises(ManifestError) as refused:
        _serve(context, manifest, ModelConfig(path=str(digits.path)), lambda instrument: asyncio.sleep(0))

    where = [problem.location for problem in refused.value.problems]
    assert "contributes.inputs[0].dtype" in where
    assert "contributes.inputs[0].shape" in where
    assert "contributes.outputs" in where  # missing
    assert "contributes.output" in where  # unknown key


def test_warm_up_runs_full_batches_at_activation_and_stays_out_of_the_metrics(models, context, kit):
    config = ModelConfig(
        path=str(models / "mlp.onnx"), warmup_batches=3, batching=BatchingConfig(max_batch_size=16)
    )
    calls: list[int] = []

    class Counting(OnnxInstrument):
        def predict(self, batch):
            calls.append(len(batch["input"]))
            return super().predict(batch)

    async def scenario():
        instrument = Counting()
        await instrument.activate(context(kit.MLP_MANIFEST, config))
        warm = list(calls)
        await instrument.infer({"input": np.zeros(256, np.float32)})
        metrics = instrument.metrics()
        await instrument.deactivate()
        return warm, metrics

    warm, metrics = asyncio.run(scenario())

    assert warm == [16, 16, 16]
    assert (metrics.completed, metrics.batches) == (1, 1)
