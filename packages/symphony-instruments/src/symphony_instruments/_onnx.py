"""`OnnxInstrument`: serve an ``.onnx`` file with nothing but a config and the manifest's declarations."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information

from symphony_core import Context, SymphonyError, check_access

from ._config import PROVIDER_ALIASES, InstrumentConfig, ModelConfig
from ._contributions import FoundTensor, check_model
from ._errors import ModelError, ModelHashMismatch
from ._instrument import Batch, Instrument

CPU = "CPUExecutionProvider"
_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}
_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OnnxInstrument(Instrument[ModelConfig]):
    """An instrument that serves one ONNX model with onnxruntime; it needs no code, only a config.

    Point the entry point at this class (or a subclass), name a `ModelConfig` subclass as the
    manifest's ``config`` (or none, for the defaults: ``model.onnx`` in the extension's data folder),
    and declare the model's tensors under ``[contributes]``. Activation resolves the path, asks the
    guard for ``fs.read`` on it (onnxruntime reads natively, where the guard cannot see), checks the
    sha256, opens the session on the chosen providers and checks it against the declarations.
    """

    config_model: ClassVar[type[InstrumentConfig]] = ModelConfig

    session: ort.InferenceSession | None = None
    model_path: Path
    """The model file, as resolved at activation."""
    providers: list[str]
    """The execution providers the session runs on, best first."""
    _output_names: list[str]

    async def load(self) -> None:
        """Open the model file named by the config in an onnxruntime session."""
        # off the loop: reading and hashing a big file takes a while (session creation holds the GIL)
        await asyncio.to_thread(self._open)

    def predict(self, batch: Batch) -> Batch:
        """Run the session on one batch and return the declared outputs."""
        assert self.session is not None
        names = self._output_names
        return dict(zip(names, self.session.run(names, dict(batch)), strict=True))

    async def unload(self) -> None:
        """Drop the session."""
        self.session = None

    def _open(self) -> None:
        context, config = self.context, self.config
        path = model_path(config.path, context)
        self.model_path = path
        check_access("fs.read", path)
        try:
            data = path.read_bytes()
        except SymphonyError:
            raise
        except FileNotFoundError:
            raise ModelError(
                f"model file {path} does not exist",
                extension=context.id,
                hint="put the model there, or set `path` in the instrument's config",
            ) from None
        except OSError as exc:
            raise ModelError(f"cannot read model file {path}: {exc}", extension=context.id) from None
        if config.sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != config.sha256.lower():
                raise ModelHashMismatch(str(path), config.sha256.lower(), actual, extension=context.id)
        providers = choose_providers(config.providers, context.logger, context.id)
        options = ort.SessionOptions()
        if config.intra_op_threads is not None:
            options.intra_op_num_threads = config.intra_op_threads
        if config.inter_op_threads is not None:
            options.inter_op_num_threads = config.inter_op_threads
            if config.inter_op_threads > 1:
                options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        options.graph_optimization_level = _OPTIMIZATION[config.graph_optimization]
        try:
            # loaded from the bytes that were hashed, so the checked file is the one that runs
            session = ort.InferenceSession(data, sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelError(
                f"onnxruntime cannot load model file {path}: {exc}",
                extension=context.id,
                hint="check that the file is a complete ONNX model this onnxruntime version supports",
            ) from None
        lost = [name for name in providers if name not in session.get_providers()]
        if lost:
            context.logger.warning(
                "%s: onnxruntime could not start %s for this model and runs it on %s",
                context.id,
                ", ".join(lost),
                ", ".join(session.get_providers()),
            )
        check_model(
            self.contributions,
            [_found(node) for node in session.get_inputs()],
            [_found(node) for node in session.get_outputs()],
            model=str(path),
            extension=context.id,
        )
        self._output_names = [spec.name for spec in self.contributions.outputs]
        self.providers = session.get_providers()
        self.session = session


def model_path(text: str, context: Context) -> Path:
    """The model file a config's ``path`` names: ``{data}``/``{cache}`` expanded, relative to ``{data}``."""
    expanded = text.replace("{data}", str(context.data_dir)).replace("{cache}", str(context.cache_dir))
    path = Path(expanded).expanduser()
    return path if path.is_absolute() else context.data_dir / path


def choose_providers(wanted: Sequence[str], logger: logging.Logger, extension: str) -> list[str]:
    """The providers to ask onnxruntime for: those wanted that it has, in order, then the CPU.

    A wanted provider this onnxruntime cannot use is reported once, with what to install.
    """
    available = ort.get_available_providers()
    chosen: list[str] = []
    missing: list[str] = []
    for name in wanted:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        target = chosen if full in available else missing
        if full not in target:
            target.append(full)
    if CPU not in chosen:
        chosen.append(CPU)
    if missing:
        advice = (
            " For CUDA, install `onnxruntime-gpu` instead of `onnxruntime`, with a matching CUDA and cuDNN."
            if "CUDAExecutionProvider" in missing
            else ""
        )
        logger.warning(
            "%s: %s asked for, but this onnxruntime cannot use it (available: %s); falling back to %s.%s",
            extension,
            ", ".join(missing),
            ", ".join(available),
            ", ".join(chosen),
            advice,
        )
    return chosen


def _found(node: Any) -> FoundTensor:
    shape = node.shape
    return FoundTensor(
        name=node.name,
        dtype=_ONNX_TYPES.get(node.type, node.type),
        shape=None if shape is None else tuple(shape),
    )
