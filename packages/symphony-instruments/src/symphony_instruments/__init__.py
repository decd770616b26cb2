"""Symphony instruments: publish an ML model on onnxruntime as a Symphony extension.

Extension authors import from this package only; it re-exports what they need from the core.
"""

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
from ._config import BatchingConfig, InstrumentConfig, ModelConfig
from ._contributions import Contributions, TensorSpec, read_contributions
from ._errors import (
    DeadlineExceeded,
    InstrumentError,
    InvalidInput,
    ModelError,
    ModelHashMismatch,
    ModelMismatch,
    Overloaded,
    PipelineClosed,
)
from ._instrument import Batch, Instrument
from ._onnx import OnnxInstrument

__version__ = "0.1.0"
__all__ = [
    "Instrument",
    "OnnxInstrument",
    "Batch",
    "Metrics",
    # Configuration.
    "Config",
    "InstrumentConfig",
    "BatchingConfig",
    "ModelConfig",
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
    "PipelineClosed",
    "__version__",
]
