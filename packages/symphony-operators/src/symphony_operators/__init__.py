"""Symphony operators: publish a data transform on polars as a Symphony extension, and run pipelines of them.

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
)

from ._conform import BadRows
from ._errors import BadData, ContractError, Mismatch, PipelineError, SchemaMismatch, SpecError
from ._files import (
    Engine,
    Format,
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
from ._schema import Column, Contract, parse_dtype
from ._spec import PipelineSpec, load_pipeline, read_spec

__version__ = "0.1.0"
__all__ = [
    "Operator",
    "Config",
    "Context",
    "Manifest",
    # Declared schemas ([contributes] in the manifest).
    "Column",
    "Contract",
    "parse_dtype",
    # Pipelines.
    "BadRows",
    "Engine",
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
    # Errors.
    "BadData",
    "ConfigError",
    "ContractError",
    "ErrorDetail",
    "ExtensionFailed",
    "GuardDenied",
    "ManifestError",
    "Mismatch",
    "PermissionDenied",
    "PipelineError",
    "SchemaMismatch",
    "SpecError",
    "SymphonyError",
    "__version__",
]
