"""Symphony operators: publish a data transform on polars as a Symphony extension.

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

from ._operator import Operator

__version__ = "0.1.0"
__all__ = [
    "Operator",
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
