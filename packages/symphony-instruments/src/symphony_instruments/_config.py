"""The config an instrument is served with: batching, input checks, warm-up, and the ONNX model to load.

Authors subclass `ModelConfig` (or `InstrumentConfig` for an instrument that is not an ONNX file) to
change defaults; people override any field through the host's config layers (file, environment, host).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from symphony_core import Config

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


class BatchingConfig(Config):
    """How requests are gathered into batches, how many may wait, and how long they may take."""

    max_batch_size: int = Field(
        default=64,
        ge=1,
        le=1_000_000,
        description="The most items run together in one batch; a larger request runs in parts of this size.",
    )
    max_queue: int = Field(
        default=1024,
        ge=1,
        description="The most requests waiting for the model; one more is refused at once (`Overloaded`).",
    )
    max_delay_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=10_000.0,
        description=(
            "How long an idle model waits for more requests to fill a batch. 0 (the default) adds no wait: "
            "batches grow by themselves while the model is busy."
        ),
    )
    timeout_ms: float | None = Field(
        default=30_000.0,
        gt=0.0,
        description=(
            "Each request's deadline unless the caller gives one: past it the caller gets "
            "`DeadlineExceeded`. None waits as long as it takes."
        ),
    )
    in_flight: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Batches run at the same time (executor threads; workers when isolated). For a local model, 2 "
            "helps when one run does not use every core, e.g. with `intra_op_threads = 1`, and more only "
            "adds contention; a `RemoteInstrument` keeps this many requests in flight to its endpoint."
        ),
    )


class ServingConfig(Config):
    """How ``symphony serve`` deploys the instrument on a Ray cluster; its flags override these values."""

    replicas: int = Field(default=1, ge=1, le=1024, description="Replicas of a fixed-size deployment.")
    min_replicas: int | None = Field(
        default=None,
        ge=0,
        le=1024,
        description="With `max_replicas`: autoscale between these bounds instead of running `replicas`.",
    )
    max_replicas: int | None = Field(
        default=None, ge=1, le=1024, description="The most replicas autoscaling may start."
    )
    target_ongoing_requests: float = Field(
        default=2.0,
        gt=0.0,
        description="Autoscaling's target of requests in progress per replica: more adds replicas.",
    )
    max_ongoing_requests: int = Field(
        default=64,
        ge=1,
        description="Requests one replica takes at once; beyond it callers get 503 (overloaded).",
    )
    cpus: float = Field(default=1.0, gt=0.0, description="CPUs Ray reserves for each replica.")
    memory_mb: int | None = Field(
        default=None, ge=1, description="Memory Ray reserves for each replica (MiB); None reserves none."
    )
    max_request_mb: float = Field(
        default=16.0,
        gt=0.0,
        description="The largest request body a replica reads (MiB); a larger one is answered 413.",
    )

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> ServingConfig:
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("set both min_replicas and max_replicas to autoscale, or neither")
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self


class InstrumentConfig(Config):
    """The config every instrument has: batching, input checks, warm-up, and how it is served."""

    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="See `BatchingConfig`.")
    reject_nan: bool = Field(
        default=False,
        description="Refuse a request whose float inputs contain NaN (`InvalidInput`), before it joins a batch.",
    )
    warmup_batches: int = Field(
        default=1,
        ge=0,
        le=1000,
        description=(
            "Full batches of zeros run at activation, so the first real request does not pay for "
            "allocations (dynamic axes other than the batch axis are 1)."
        ),
    )
    serving: ServingConfig = Field(
        default_factory=ServingConfig, description="See `ServingConfig` (`symphony serve`)."
    )


class ModelConfig(InstrumentConfig):
    """The config of an `OnnxInstrument`: which `.onnx` file, its hash, where and how it runs."""

    path: str = Field(
        default="model.onnx",
        min_length=1,
        description=(
            "The model file. A relative path is inside the extension's data folder; `{data}` and `{cache}` "
            "stand for its data and cache folders."
        ),
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="The file's expected SHA-256 (hex); a file with another hash is refused.",
    )
    providers: tuple[str, ...] = Field(
        default=("cpu",),
        min_length=1,
        description=(
            "Execution providers in order of preference: `cpu`, `cuda`, ... or onnxruntime's own names. "
            "One this onnxruntime cannot use is skipped with a warning; the CPU is always the last resort."
        ),
    )
    intra_op_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads one operator may use; None lets onnxruntime choose (one per physical core).",
    )
    inter_op_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads running independent operators at once; more than 1 turns on parallel execution.",
    )
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        default="all", description="onnxruntime's graph optimization level."
    )

    @field_validator("providers")
    @classmethod
    def _providers_are_known(cls, providers: tuple[str, ...]) -> tuple[str, ...]:
        for name in providers:
            if name.lower() not in PROVIDER_ALIASES and not name.endswith("ExecutionProvider"):
                known = ", ".join(PROVIDER_ALIASES)
                raise ValueError(f"unknown provider '{name}': use one of {known}, or an onnxruntime name")
        return providers
