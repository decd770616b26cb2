"""Symphony instruments: publish an ML model on onnxruntime as a Symphony extension.

Extension authors import from this package only; it re-exports what they need from the core, the same
names as ``symphony_operators`` and ``symphony_motifs`` do.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from symphony_core import (
    Config,
    ConfigError,
    Context,
    EnvVars,
    ErrorDetail,
    ExtensionFailed,
    FileRead,
    FileWrite,
    Gpu,
    GuardDenied,
    Manifest,
    ManifestError,
    NetConnect,
    NetListen,
    Permission,
    PermissionDenied,
    Subprocess,
    SymphonyError,
    check_access,
)

from ._batching import Metrics
from ._config import BatchingConfig, InstrumentConfig, ModelConfig, ServingConfig
from ._contributions import Contributions, TensorSpec, read_contributions
from ._errors import (
    BatcherClosed,
    DeadlineExceeded,
    EndpointError,
    InstrumentError,
    InvalidInput,
    ModelError,
    ModelHashMismatch,
    ModelMismatch,
    Overloaded,
)
from ._instrument import Batch, Instrument
from ._onnx import OnnxInstrument
from ._remote import RemoteConfig, RemoteInstrument

if TYPE_CHECKING:
    PipelineClosed = BatcherClosed  # the old name, until it is removed

__version__ = "0.1.0"
__all__ = [
    "Instrument",
    "OnnxInstrument",
    "RemoteInstrument",
    "Batch",
    "Metrics",
    # Configuration.
    "Config",
    "InstrumentConfig",
    "BatchingConfig",
    "ModelConfig",
    "RemoteConfig",
    "ServingConfig",
    # The manifest and what an instrument declares in it.
    "Context",
    "Manifest",
    "Contributions",
    "TensorSpec",
    "read_contributions",
    # Permissions an extension can request.
    "EnvVars",
    "FileRead",
    "FileWrite",
    "Gpu",
    "NetConnect",
    "NetListen",
    "Permission",
    "Subprocess",
    "check_access",
    # Errors.
    "SymphonyError",
    "ErrorDetail",
    "ConfigError",
    "ExtensionFailed",
    "ManifestError",
    "PermissionDenied",
    "GuardDenied",
    "InstrumentError",
    "ModelError",
    "ModelHashMismatch",
    "ModelMismatch",
    "InvalidInput",
    "Overloaded",
    "DeadlineExceeded",
    "BatcherClosed",
    "EndpointError",
    "__version__",
]

_RENAMED = {"PipelineClosed": "BatcherClosed"}
"""Old names still answered, with a `DeprecationWarning`, until the next minor release."""


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{__name__}.{name} is deprecated: use {__name__}.{new}", DeprecationWarning, stacklevel=2)
    return globals()[new]


for _name in __all__:  # reprs, tracebacks and the API reference show the public path
    _value = globals()[_name]
    if hasattr(_value, "__qualname__") and _value.__module__.startswith(f"{__name__}."):
        _value.__module__ = __name__
del _name, _value
