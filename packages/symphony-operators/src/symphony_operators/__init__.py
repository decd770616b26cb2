"""Symphony operators: publish a data transform on polars as a Symphony extension."""

from symphony_core import (
    Context,
    EnvVars,
    ExtensionFailed,
    FileRead,
    FileWrite,
    Manifest,
    ManifestError,
    NetConnect,
    NetListen,
    PermissionDenied,
    Subprocess,
    SymphonyError,
)

from ._operator import Operator

__version__ = "0.1.0"
__all__ = [
    "Context",
    "EnvVars",
    "ExtensionFailed",
    "FileRead",
    "FileWrite",
    "Manifest",
    "ManifestError",
    "NetConnect",
    "NetListen",
    "Operator",
    "PermissionDenied",
    "Subprocess",
    "SymphonyError",
    "__version__",
]
