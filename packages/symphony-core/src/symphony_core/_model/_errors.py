"""Every error Symphony raises on purpose: one base class, one family per concern.

```text
SymphonyError
├── ManifestError               an extension's manifest is missing, unreadable or invalid
│   └── EntryPointError         its entry point is malformed or names no module
├── CompatibilityError          it does not fit the installed Python, kit or core
│   └── ConflictError           another distribution declares its id
├── LifecycleError              it cannot move to the state asked for
│   ├── ExtensionNotFound       no installed extension has that id
│   ├── ExtensionFailed         its own code raised, or it is failed
│   │   └── RemoteError         ... in an isolated worker, as a class the host does not rebuild
│   └── BudgetExceeded          importing, activating or a call took too long
├── PermissionDenied            it touched what was not granted to it
│   ├── GuardDenied             ... in this process (also a PermissionError)
│   └── ConsentRequired         it asks for permissions not all granted
├── ConfigError                 its configuration is invalid
├── StateError                  the host's state database cannot be read or written
├── InstallError                installing, upgrading or uninstalling failed; nothing changed
└── SandboxError                the isolated tier cannot start, reach or keep a worker
    ├── SandboxUnavailable      this platform cannot run isolated workers
    ├── WorkerCrashed           a worker died or broke the protocol
    ├── ProtocolError           a worker spoke another protocol or out of turn
    ├── WorkerTimeout           a worker did not answer in time (also a BudgetExceeded)
    └── Quarantined             its workers crashed too often
```

Each error names the extension it concerns (when there is one) and ends with what to do next, so a
message read in a log or a terminal is enough to act on. Its details are data: ``problems`` (one
`ErrorDetail` per bad field, argument or column) and the attributes its class lists in ``data_fields``.
They are rendered into the text once, here; code that needs them reads the attributes, never the text.
That data is also what crosses from an isolated worker, where the host rebuilds the error with
`SymphonyError.from_data` (see ``_crossing``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ._public import public

ErrorT = TypeVar("ErrorT", bound="SymphonyError")


@public
@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One thing wrong in what a person wrote or sent: where, what, and a code a program can match on.

    ``location`` reads like ``src/acme/symphony.toml: permissions[0].reason``, ``batching.max_queue`` or
    ``count`` (an argument); ``code`` is short and stable (pydantic's error type, e.g. ``missing``), or
    empty when there is none.
    """

    location: str
    message: str
    code: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def __iter__(self) -> Iterator[str]:
        """Unpacks as the ``(location, message)`` pair ``problems`` held in 0.1: deprecated, it goes in the
        next minor release."""
        warnings.warn(
            "unpacking an ErrorDetail as (location, message) is deprecated: read .location and .message",
            DeprecationWarning,
            stacklevel=2,
        )
        return iter((self.location, self.message))


@public
class SymphonyError(Exception):
    """Base class of every error Symphony raises on purpose.

    ``message`` is the whole text (the summary, then one line per problem); ``summary`` is its first part,
    as the code that raised it wrote it.
    """

    data_fields: ClassVar[tuple[str, ...]] = ()
    """The attributes this class adds that are plain data (str, int, float, bool, None, and lists or dicts
    of them): they cross from an isolated worker with the error. Subclasses list only their own."""

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        hint: str | None = None,
        problems: Iterable[ErrorDetail | tuple[str, str]] = (),
    ) -> None:
        self.summary = message
        self.extension = extension
        self.hint = hint
        self.problems = _details(problems)
        super().__init__(self._render())

    @property
    def message(self) -> str:
        """The summary, then one line per problem."""
        return self.summary + "".join(f"\n  - {problem}" for problem in self.problems)

    def data(self) -> dict[str, Any]:
        """The values of every attribute named in ``data_fields`` (this class's and its bases')."""
        return {name: getattr(self, name, None) for name in _data_fields(type(self))}

    @classmethod
    def from_data(
        cls: type[ErrorT],
        message: str,
        *,
        extension: str | None = None,
        hint: str | None = None,
        problems: Iterable[ErrorDetail] = (),
        data: Mapping[str, Any] | None = None,
    ) -> ErrorT:
        """The error rebuilt from its data, without running the class's ``__init__``: how the host
        makes an error an isolated worker reported. Only the names in ``data_fields`` are taken from
        ``data`` (a missing one is None); subclasses whose fields are not plain data override this."""
        error = cls.__new__(cls)
        error.summary = message
        error.extension = extension
        error.hint = hint
        error.problems = _details(problems)
        given = data or {}
        for name in _data_fields(cls):
            setattr(error, name, given.get(name))
        Exception.__init__(error, error._render())
        return error

    def _render(self) -> str:
        text = f"{self.extension}: {self.message}" if self.extension else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its class, its text and its attributes, never by calling its ``__init__`` again (a
        subclass's own arguments are not its ``args``): it crosses process pools and pytest-xdist as itself."""
        state = dict(vars(self))
        if isinstance(self, OSError):  # an OSError keeps errno in a slot of its own, outside __dict__
            state["errno"] = self.errno
        return (_unpickled, (type(self), self.args), state)


def _unpickled(cls: type[ErrorT], args: tuple[Any, ...]) -> ErrorT:
    """An error of ``cls`` with ``args``, made without its ``__init__``; pickle then restores its attributes."""
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)  # an OSError's __new__ leaves args to the __init__ skipped here
    return error


def blamed(error: ErrorT, extension: str) -> ErrorT:
    """``error``, naming ``extension`` if it names none: an error raised by an extension's call is about
    that extension (as the host says of one its worker raised)."""
    if error.extension is None:
        error.extension = extension
        error.args = (error._render(),)
    return error


def _details(problems: Iterable[ErrorDetail | tuple[str, str]]) -> tuple[ErrorDetail, ...]:
    return tuple(p if isinstance(p, ErrorDetail) else ErrorDetail(*p) for p in problems)


def _data_fields(cls: type[SymphonyError]) -> tuple[str, ...]:
    names = (name for klass in reversed(cls.__mro__) for name in vars(klass).get("data_fields", ()))
    return tuple(dict.fromkeys(names))


# Manifest errors: what an author wrote is not a valid extension description.


@public
class ManifestError(SymphonyError):
    """Raised when an extension's manifest is missing, unreadable or invalid.

    ``problems`` holds one `ErrorDetail` per bad field, whose location reads like
    ``src/acme/symphony.toml: permissions[0].reason``; ``file`` is the manifest file, when known.
    """

    data_fields = ("file",)

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        file: str | None = None,
        problems: Iterable[ErrorDetail | tuple[str, str]] = (),
        hint: str | None = None,
    ) -> None:
        self.file = file
        super().__init__(message, extension=extension, hint=hint, problems=problems)


@public
class EntryPointError(ManifestError):
    """Raised when an extension's entry point is malformed or names a module that does not exist."""


# Compatibility errors: the extension is well formed but cannot run here.


@public
class CompatibilityError(SymphonyError):
    """Raised when starting an extension that does not fit what is installed: a Python it does not
    support, its kit missing or in a version it was not built for (discovery found it: its ``problem``
    says which), or another distribution keeping its id (`ConflictError`)."""


@public
class ConflictError(CompatibilityError):
    """Raised when two installed distributions declare the same extension id: the one the policy trusts, or
    else the one already granted, keeps it; with neither, neither is used."""


# Lifecycle errors: something went wrong while loading or running an extension.


@public
class LifecycleError(SymphonyError):
    """Raised when an extension cannot move to the lifecycle state that was asked for."""


@public
class ExtensionNotFound(LifecycleError):
    """Raised when no installed extension has the id that was asked for."""


@public
class ExtensionFailed(LifecycleError):
    """Raised when an extension's own code raised, or it is in the ``failed`` state."""


@public
class BudgetExceeded(LifecycleError):
    """Raised when importing, activating or calling an extension took longer than its time budget."""


# Permission errors.


@public
class PermissionDenied(SymphonyError):
    """Raised when an extension touches a resource that was not granted to it."""


@public
class GuardDenied(PermissionDenied, PermissionError):
    """Raised by the in-process guard when extension code uses a resource it was not granted.

    It is also a ``PermissionError`` (EACCES), as the kernel's refusal is under the isolated tier, so code
    that copes with an unreadable file (``except OSError``) behaves the same under both tiers.
    """


@public
class ConsentRequired(PermissionDenied):
    """Raised when activating an extension whose requested permissions are not all granted."""


# Config errors.


@public
class ConfigError(SymphonyError):
    """Raised when an extension's configuration is invalid; names each field and where it came from."""


# Host state errors.


@public
class StateError(SymphonyError):
    """Raised when the host's state database cannot be read or written."""


# Install errors: ``symphony install`` and `Host.install` could not install, upgrade or uninstall.


@public
class InstallError(SymphonyError):
    """Raised when installing, upgrading or uninstalling an extension failed; nothing was changed.

    ``distribution`` is the distribution concerned, when known.
    """

    data_fields = ("distribution",)

    def __init__(self, message: str, *, distribution: str | None = None, **kwargs: Any) -> None:
        self.distribution = distribution
        super().__init__(message, **kwargs)


# Sandbox errors: the isolated tier could not start, reach or keep an extension's worker.


@public
class SandboxError(SymphonyError):
    """Raised when the isolated tier cannot start, reach or keep an extension's worker process."""


@public
class SandboxUnavailable(SandboxError):
    """Raised when this platform cannot run isolated workers at all (the isolated tier needs Linux)."""


@public
class WorkerCrashed(SandboxError):
    """Raised when an extension's worker died (a signal, an exit, its memory limit) or broke the protocol.

    ``stderr`` holds the last lines the worker wrote, ``exit_code`` its exit status (negative: the signal).
    """

    data_fields = ("exit_code", "stderr")

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        hint: str | None = None,
        exit_code: int | None = None,
        stderr: str = "",
    ) -> None:
        self.exit_code = exit_code
        self.stderr = stderr
        super().__init__(message, extension=extension, hint=hint)


@public
class ProtocolError(SandboxError):
    """Raised when a worker breaks the host/worker protocol (another version, a message out of turn)."""


@public
class WorkerTimeout(SandboxError, BudgetExceeded):
    """Raised when a worker did not answer within the time allowed; the worker was killed."""


@public
class Quarantined(SandboxError):
    """Raised when an extension's workers crashed too often: it is not restarted until the quarantine is lifted."""


@public
class RemoteError(ExtensionFailed):
    """Raised when extension code in an isolated worker raised an exception the host does not rebuild as
    its own class (anything but the Symphony errors an extension may raise); the worker itself goes on.

    The exception cannot cross the process boundary as an object, so this carries it as data:
    ``remote_type`` (its qualified class name), ``builtin`` (the nearest built-in exception class it
    derives from, e.g. ``PermissionError`` for a file the kernel refused), ``errno``, the worker's
    ``remote_traceback``, and the ``problems`` of a Symphony error the host does not know.
    """

    data_fields = ("remote_type", "builtin", "errno", "remote_traceback")

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        hint: str | None = None,
        remote_type: str = "",
        builtin: str | None = None,
        errno: int | None = None,
        remote_traceback: str = "",
        problems: Iterable[ErrorDetail] = (),
    ) -> None:
        self.remote_type = remote_type
        self.builtin = builtin
        self.errno = errno
        self.remote_traceback = remote_traceback
        super().__init__(message, extension=extension, hint=hint, problems=problems)
