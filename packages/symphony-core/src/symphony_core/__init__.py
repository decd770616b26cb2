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

from ._model._errors import (
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
    InstallError,
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
    from ._authoring._distributions import write_distribution
    from ._authoring._testing import Harness
    from ._catalog._discovery import discover
    from ._catalog._records import Catalog, Problem, Record
    from ._model._crossing import register_error, register_result
    from ._model._extension import Context, Extension, nonblocking
    from ._model._hooks import HostHooks, LifecycleEvent, PermissionEvent, hookimpl
    from ._model._lifecycle import State
    from ._model._manifest import Manifest, read_manifest
    from ._model._permissions import (
        EnvVars,
        FileRead,
        FileWrite,
        Gpu,
        NetConnect,
        NetListen,
        Permission,
        Subprocess,
    )
    from ._runtime._host import ExtensionInfo, Host, Isolation
    from ._runtime._install import Installation, InstallPlan
    from ._security._grants import Consent
    from ._security._guard import check_access
    from ._security._sandbox._fronts import Workers
    from ._store._config import Config, Resolved, config_schema, env_prefix, public_dump
    from ._store._standalone import served_config, standalone_context

__version__ = "0.1.0"

_LAZY = {
    "Config": "._store._config",
    "Resolved": "._store._config",
    "config_schema": "._store._config",
    "env_prefix": "._store._config",
    "public_dump": "._store._config",
    "register_error": "._model._crossing",
    "register_result": "._model._crossing",
    "Catalog": "._catalog._records",
    "Problem": "._catalog._records",
    "Record": "._catalog._records",
    "discover": "._catalog._discovery",
    "Context": "._model._extension",
    "check_access": "._security._guard",
    "Consent": "._security._grants",
    "Extension": "._model._extension",
    "nonblocking": "._model._extension",
    "HostHooks": "._model._hooks",
    "LifecycleEvent": "._model._hooks",
    "PermissionEvent": "._model._hooks",
    "hookimpl": "._model._hooks",
    "ExtensionInfo": "._runtime._host",
    "Host": "._runtime._host",
    "Isolation": "._runtime._host",
    "InstallPlan": "._runtime._install",
    "Installation": "._runtime._install",
    "State": "._model._lifecycle",
    "Manifest": "._model._manifest",
    "read_manifest": "._model._manifest",
    "EnvVars": "._model._permissions",
    "FileRead": "._model._permissions",
    "FileWrite": "._model._permissions",
    "Gpu": "._model._permissions",
    "NetConnect": "._model._permissions",
    "NetListen": "._model._permissions",
    "Permission": "._model._permissions",
    "Subprocess": "._model._permissions",
    "Harness": "._authoring._testing",
    "write_distribution": "._authoring._distributions",
    "served_config": "._store._standalone",
    "standalone_context": "._store._standalone",
    "Workers": "._security._sandbox._fronts",
}

__all__ = [
    "BudgetExceeded",
    "Catalog",
    "CompatibilityError",
    "Config",
    "ConfigError",
    "ConflictError",
    "Consent",
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
    "HostHooks",
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
    "nonblocking",
    "public_dump",
    "read_manifest",
    "register_error",
    "register_result",
    "served_config",
    "standalone_context",
    "write_distribution",
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
