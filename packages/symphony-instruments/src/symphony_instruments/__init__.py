"""Symphony instruments: publish an ML model on onnxruntime as a Symphony extension.

Extension authors import from this package only; it re-exports what they need from the core.
"""

from symphony_core import (
    Config,
    ConfigError,
    Context,
    EnvVars,
    ExtensionFailed,
    FileRead,
    FileWrite,
    Gpu,
    Manifest,
    ManifestError,
    NetConnect,
    NetListen,
    Permission,
    PermissionDenied,
    Subprocess,
    SymphonyError,
)

from ._instrument import Batch, Instrument

__version__ = "0.1.0"
__all__ = [
    "Instrument",
    "Batch",
    "Config",
    "Context",
    "Manifest",
    # Permissions an extension can request.
    "EnvVars",
    "FileRead",
    "FileWrite",
    "Gpu",
    "NetConnect",
    "NetListen",
    "Permission",
    "Subprocess",
    # Errors.
    "ConfigError",
    "ExtensionFailed",
    "ManifestError",
    "PermissionDenied",
    "SymphonyError",
    "__version__",
]
