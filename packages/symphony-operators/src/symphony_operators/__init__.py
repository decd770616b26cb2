"""Symphony operators: publish a data transform on polars as a Symphony extension, and run pipelines of them.

Extension authors import from this package only; it re-exports what they need from the core, the same
names as ``symphony_instruments`` and ``symphony_motifs`` do.
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

from ._conform import BadRows
from ._errors import BadData, ContractError, Mismatch, OperatorError, PipelineError, SchemaMismatch, SpecError
from ._files import (
    Engine,
    Format,
    IfExists,
    Target,
    expand,
    scan,
    scan_csv,
    scan_ipc,
    scan_ndjson,
    scan_parquet,
    sink,
    sink_all,
)
from ._operator import Operator
from ._pipeline import Pipeline, Plan, Run, Sink, Source, Step
from ._schema import Column, Contributions, parse_dtype, read_contributions
from ._spec import PipelineSpec, load_pipeline, read_spec

if TYPE_CHECKING:
    Contract = Contributions  # the old name, until it is removed

__version__ = "0.1.0"
__all__ = [
    "Operator",
    # Configuration.
    "Config",
    # The manifest and what an operator declares in it.
    "Context",
    "Manifest",
    "Contributions",
    "Column",
    "parse_dtype",
    "read_contributions",
    # Pipelines.
    "BadRows",
    "Engine",
    "IfExists",
    "Pipeline",
    "PipelineSpec",
    "Plan",
    "Run",
    "Sink",
    "Source",
    "Step",
    "load_pipeline",
    "read_spec",
    # Files, read and written through the permissions.
    "Format",
    "Target",
    "expand",
    "scan",
    "scan_csv",
    "scan_ipc",
    "scan_ndjson",
    "scan_parquet",
    "sink",
    "sink_all",
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
    "OperatorError",
    "ContractError",
    "PipelineError",
    "SpecError",
    "SchemaMismatch",
    "Mismatch",
    "BadData",
    "__version__",
]

_RENAMED = {"Contract": "Contributions"}
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
