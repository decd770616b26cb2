"""Symphony's private core, shared by the three extension kits and by hosts.

The names in ``__all__`` are a contract with ``symphony-instruments``, ``symphony-operators``,
``symphony-motifs`` and with marketplace hosts; extension authors use their kit's package instead.
Everything else lives in underscore modules and may change in any release.

Heavy modules (pydantic models, the host) are imported on first use, so ``import symphony_core`` stays
cheap for the command line and for discovery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    BudgetExceeded,
    CompatibilityError,
    ConfigError,
    ConflictError,
    ConsentRequired,
    EntryPointError,
    ErrorDetail,
    ExtensionFailed,
    ExtensionNotFound,
    GuardDenied,
    LifecycleError,
    ManifestError,
    PermissionDenied,
    ProtocolError,
    Quarantined,
    RemoteError,
    SandboxError,
    SandboxUnavailable,
    StateError,
    SymphonyError,
    WorkerCrashed,
    WorkerTimeout,
)

if TYPE_CHECKING:
    from ._config import Config, Resolved, config_schema, env_prefix, public_dump
    from ._crossing import register_error, register_result
    from ._discovery import Catalog, Problem, Record, discover
    from ._extension import Context, Extension
    from ._guard import check_access
    from ._hooks import LifecycleEvent, PermissionEvent, hookimpl
    from ._host import ExtensionInfo, Host, Isolation
    from ._install import Installation, InstallError, InstallPlan
    from ._lifecycle import State
    from ._manifest import Manifest, read_manifest
    from ._permissions import EnvVars, FileRead, FileWrite, Gpu, NetConnect, NetListen, Permission, Subprocess
    from ._sandbox._fronts import Workers
    from ._testing import Harness

__version__ = "0.1.0"

_LAZY = {
    "Config": "._config",
    "Resolved": "._config",
    "config_schema": "._config",
    "env_prefix": "._config",
    "public_dump": "._config",
    "register_error": "._crossing",
    "register_result": "._crossing",
    "Catalog": "._discovery",
    "Problem": "._discovery",
    "Record": "._discovery",
    "discover": "._discovery",
    "Context": "._extension",
    "check_access": "._guard",
    "Extension": "._extension",
    "LifecycleEvent": "._hooks",
    "PermissionEvent": "._hooks",
    "hookimpl": "._hooks",
    "ExtensionInfo": "._host",
    "Host": "._host",
    "Isolation": "._host",
    "InstallError": "._install",
    "InstallPlan": "._install",
    "Installation": "._install",
    "State": "._lifecycle",
    "Manifest": "._manifest",
    "read_manifest": "._manifest",
    "EnvVars": "._permissions",
    "FileRead": "._permissions",
    "FileWrite": "._permissions",
    "Gpu": "._permissions",
    "NetConnect": "._permissions",
    "NetListen": "._permissions",
    "Permission": "._permissions",
    "Subprocess": "._permissions",
    "Harness": "._testing",
    "Workers": "._sandbox._fronts",
}

__all__ = [
    "BudgetExceeded",
    "Catalog",
    "CompatibilityError",
    "Config",
    "ConfigError",
    "ConflictError",
    "ConsentRequired",
    "Context",
    "EntryPointError",
    "EnvVars",
    "ErrorDetail",
    "Extension",
    "ExtensionFailed",
    "ExtensionInfo",
    "ExtensionNotFound",
    "FileRead",
    "FileWrite",
    "Gpu",
    "GuardDenied",
    "Harness",
    "Host",
    "InstallError",
    "InstallPlan",
    "Installation",
    "Isolation",
    "LifecycleError",
    "LifecycleEvent",
    "Manifest",
    "ManifestError",
    "NetConnect",
    "NetListen",
    "Permission",
    "PermissionDenied",
    "PermissionEvent",
    "Problem",
    "ProtocolError",
    "Quarantined",
    "Record",
    "RemoteError",
    "Resolved",
    "SandboxError",
    "SandboxUnavailable",
    "State",
    "StateError",
    "Subprocess",
    "SymphonyError",
    "WorkerCrashed",
    "WorkerTimeout",
    "Workers",
    "__version__",
    "check_access",
    "config_schema",
    "discover",
    "env_prefix",
    "hookimpl",
    "public_dump",
    "read_manifest",
    "register_error",
    "register_result",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symphony_core' has no attribute '{name}'")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
