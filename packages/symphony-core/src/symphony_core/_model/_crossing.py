"""What crosses from an isolated worker as itself: error classes and result types, registered by name.

A worker is not trusted, so the host never rebuilds a class because the worker names it. It rebuilds
only the classes registered here, in the host's own process, under a stable name (``symphony_core.
ConfigError``, ``symphony_instruments.Overloaded``): the core registers its own errors an extension may
raise, and each kit its public errors and result types when it is imported. The worker sends the name of
the nearest registered class of what it raised or returned; the host looks the name up here and rebuilds
that class from plain data (`SymphonyError.from_data`; msgspec's typed decoding for a result, which
checks every field's type and runs no constructor). A name the host does not know gives a
`RemoteError` (an error) or plain data (a result).

The host imports no kit to host an isolated extension, so a kit's name may be unknown to it: it then
imports the one kit the extension's kind is built on (never a module the worker names) and looks again.

The host's verdicts (``VERDICTS``: permission, consent, sandbox, compatibility, state) are never
registered: a worker could otherwise fake a consent prompt or blame another extension.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import sys
from typing import Any, TypeVar

from ._errors import (
    BudgetExceeded,
    CompatibilityError,
    ConfigError,
    EntryPointError,
    ExtensionFailed,
    ExtensionNotFound,
    ManifestError,
    PermissionDenied,
    RemoteError,
    SandboxError,
    StateError,
    SymphonyError,
)
from ._public import public

log = logging.getLogger("symphony.worker")

ErrorClass = TypeVar("ErrorClass", bound=type[SymphonyError])
ResultType = TypeVar("ResultType", bound=type)

VERDICTS: tuple[type[SymphonyError], ...] = (
    PermissionDenied,
    SandboxError,
    CompatibilityError,
    StateError,
    BudgetExceeded,
    ExtensionNotFound,
    RemoteError,
)
"""The host's own verdicts (and their subclasses): never rebuilt from what a worker says."""

ERRORS_FROM_WORKERS: dict[str, type[SymphonyError]] = {}
"""The error classes the host rebuilds when extension code in a worker raises one (or a subclass of
one), by registered name. Filled by `register_error` only; whatever is not here arrives as a
`RemoteError`."""
RESULTS_FROM_WORKERS: dict[str, type] = {}
"""The result types the host rebuilds when a worker returns one, by registered name (`register_result`)."""
_ERROR_NAMES: dict[type, str] = {}
_RESULT_NAMES: dict[type, str] = {}


@public
def register_error(cls: ErrorClass) -> ErrorClass:
    """Let ``cls`` (a `SymphonyError` an extension may raise) cross from an isolated worker as itself.

    Registered as ``<top-level package>.<class name>``; a kit registers its public errors as it is
    imported (use it as a class decorator). The host's verdicts (``VERDICTS``) are refused.
    """
    if not (isinstance(cls, type) and issubclass(cls, SymphonyError)):
        raise TypeError(f"{cls!r} is not a SymphonyError class")
    if issubclass(cls, VERDICTS):
        raise TypeError(f"{cls.__qualname__} is one of the host's verdicts: a worker may never raise it")
    _register(ERRORS_FROM_WORKERS, _ERROR_NAMES, cls)
    return cls


@public
def register_result(cls: ResultType) -> ResultType:
    """Let ``cls`` (a dataclass or msgspec ``Struct`` whose fields are plain data, arrays or frames) cross
    from an isolated worker as itself when a method returns it, rather than as a dict.

    Registered as ``<top-level package>.<class name>``; use it as a class decorator.
    """
    import msgspec

    if not (isinstance(cls, type) and (dataclasses.is_dataclass(cls) or issubclass(cls, msgspec.Struct))):
        raise TypeError(f"{cls!r} is neither a dataclass nor a msgspec Struct")
    _register(RESULTS_FROM_WORKERS, _RESULT_NAMES, cls)
    return cls


def _register(by_name: dict[str, Any], names: dict[type, str], cls: type) -> None:
    name = f"{cls.__module__.partition('.')[0]}.{cls.__qualname__}"
    known = by_name.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"'{name}' is registered already, for {known.__module__}.{known.__qualname__}")
    by_name[name] = cls
    names[cls] = name


def error_name(cls: type[BaseException]) -> str | None:
    """The registered name of the nearest registered class in ``cls``'s MRO (what a worker sends)."""
    return next((_ERROR_NAMES[klass] for klass in cls.__mro__ if klass in _ERROR_NAMES), None)


def result_name(cls: type) -> str | None:
    """The registered name of ``cls`` itself (results cross as their exact type)."""
    return _RESULT_NAMES.get(cls)


def error_class(name: str, kit: str | None = None) -> type[SymphonyError] | None:
    """The error class registered as ``name``; a name in ``kit`` (the extension's kit) imports it first."""
    found = ERRORS_FROM_WORKERS.get(name)
    if found is None and _import_kit(name, kit):
        found = ERRORS_FROM_WORKERS.get(name)
    return found


def result_type(name: str, kit: str | None = None) -> type | None:
    """The result type registered as ``name``; a name in ``kit`` (the extension's kit) imports it first."""
    found = RESULTS_FROM_WORKERS.get(name)
    if found is None and _import_kit(name, kit):
        found = RESULTS_FROM_WORKERS.get(name)
    return found


def _import_kit(name: str, kit: str | None) -> bool:
    """Import ``kit`` when ``name`` is one of its names and it is not imported yet; whether it now is."""
    if kit is None or name.partition(".")[0] != kit or kit in sys.modules:
        return False
    return _imported(kit)


@functools.cache
def _imported(kit: str) -> bool:
    try:
        importlib.import_module(kit)
    except Exception as exc:  # noqa: BLE001 - the error then arrives as a RemoteError, the result as data
        log.warning("could not import %s to rebuild what its extensions' workers send: %s", kit, exc)
        return False
    return True


for _cls in (ConfigError, ManifestError, EntryPointError, ExtensionFailed):
    register_error(_cls)
