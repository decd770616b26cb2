"""Symphony motifs: publish a UI component as a Symphony extension, and show motifs to people.

Extension authors import from this package only; it re-exports what they need from the core. Hosts use
`serve` and `open_window` to show an installed motif, and `ConfigEditor` / `build_form` to edit any
extension's config. It re-exports from the core the same names as ``symphony_instruments`` and
``symphony_operators`` do.
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

from ._contributions import Assets, Contributions, read_contributions
from ._errors import CallRefused, InvalidArguments, MotifError
from ._forms import WIDGETS, ConfigEditor, ConfigForm, FormField, SaveResult, build_form, field_errors
from ._hosting import MARKETPLACE, locate, open_window, serve
from ._motif import EventSink, Motif
from ._server import CONTENT_SECURITY_POLICY, MotifServer
from ._window import MotifWindow

if TYPE_CHECKING:
    MotifSpec = Contributions  # the old name, until it is removed

__version__ = "0.1.0"
__all__ = [
    "Motif",
    "EventSink",
    # Configuration.
    "Config",
    # The manifest and what a motif declares in it.
    "Context",
    "Manifest",
    "Contributions",
    "read_contributions",
    # Showing motifs.
    "MARKETPLACE",
    "Assets",
    "CONTENT_SECURITY_POLICY",
    "MotifServer",
    "MotifWindow",
    "locate",
    "open_window",
    "serve",
    # Config editors.
    "WIDGETS",
    "ConfigEditor",
    "ConfigForm",
    "FormField",
    "SaveResult",
    "build_form",
    "field_errors",
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
    "MotifError",
    "CallRefused",
    "InvalidArguments",
    "__version__",
]

_RENAMED = {"MotifSpec": "Contributions"}
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
