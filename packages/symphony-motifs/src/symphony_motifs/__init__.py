"""Symphony motifs: publish a UI component as a Symphony extension, and show motifs to people.

Extension authors import from this package only; it re-exports what they need from the core. Hosts use
`serve` and `open_window` to show an installed motif, and `ConfigEditor` / `build_form` to edit any
extension's config.
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

from ._errors import CallRefused, InvalidArguments, MotifError
from ._forms import WIDGETS, ConfigEditor, ConfigForm, FormField, SaveResult, build_form, field_errors
from ._hosting import MARKETPLACE, locate, open_window, serve
from ._motif import EventSink, Motif
from ._server import CONTENT_SECURITY_POLICY, MotifServer
from ._spec import Assets, MotifSpec
from ._window import MotifWindow

__version__ = "0.1.0"
__all__ = [
    "Motif",
    "MotifSpec",
    "EventSink",
    "Config",
    "Context",
    "Manifest",
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
    # Errors.
    "CallRefused",
    "ConfigError",
    "ErrorDetail",
    "ExtensionFailed",
    "GuardDenied",
    "InvalidArguments",
    "ManifestError",
    "MotifError",
    "PermissionDenied",
    "SymphonyError",
    "__version__",
]
