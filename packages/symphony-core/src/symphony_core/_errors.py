"""Every error Symphony raises on purpose: one base class, one family per concern.

Each error names the extension it concerns (when there is one) and ends with what to do next, so a
message read in a log or a terminal is enough to act on.
"""

from __future__ import annotations


class SymphonyError(Exception):
    """Base class of every error Symphony raises on purpose."""

    def __init__(self, message: str, *, extension: str | None = None, hint: str | None = None) -> None:
        self.extension = extension
        self.hint = hint
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.extension}: {self.message}" if self.extension else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


# Manifest errors: what an author wrote is not a valid extension description.


class ManifestError(SymphonyError):
    """Raised when an extension's manifest is missing, unreadable or invalid.

    ``problems`` holds one ``(location, message)`` pair per bad field, where a location reads like
    ``src/acme/symphony.toml: permissions[0].reason``.
    """

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        file: str | None = None,
        problems: tuple[tuple[str, str], ...] = (),
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.problems = problems
        details = "".join(f"\n  - {where}: {what}" for where, what in problems)
        super().__init__(message + details, extension=extension, hint=hint)


class EntryPointError(ManifestError):
    """Raised when an extension's entry point is malformed or names a module that does not exist."""


# Compatibility errors: the extension is well formed but cannot run here.


class CompatibilityError(SymphonyError):
    """Raised when an extension does not fit the installed packages, Python or other extensions."""


class ConflictError(CompatibilityError):
    """Raised when two installed distributions declare the same extension id: the one the policy trusts, or
    else the one already granted, keeps it; with neither, neither is used."""


# Lifecycle errors: something went wrong while loading or running an extension.


class LifecycleError(SymphonyError):
    """Raised when an extension cannot move to the lifecycle state that was asked for."""


class ExtensionNotFound(LifecycleError):
    """Raised when no installed extension has the id that was asked for."""


class ExtensionFailed(LifecycleError):
    """Raised when an extension's own code raised, or it is in the ``failed`` state."""


class BudgetExceeded(LifecycleError):
    """Raised when importing or activating an extension took longer than its time budget."""


# Permission errors.


class PermissionDenied(SymphonyError):
    """Raised when an extension touches a resource that was not granted to it."""


class GuardDenied(PermissionDenied, PermissionError):
    """Raised by the in-process guard when extension code uses a resource it was not granted.

    It is also a ``PermissionError`` (EACCES), as the kernel's refusal is under the isolated tier, so code
    that copes with an unreadable file (``except OSError``) behaves the same under both tiers.
    """


class ConsentRequired(PermissionDenied):
    """Raised when activating an extension whose requested permissions are not all granted."""


# Config errors.


class ConfigError(SymphonyError):
    """Raised when an extension's configuration is invalid; names each field and where it came from."""


# Host state errors.


class StateError(SymphonyError):
    """Raised when the host's state database cannot be read or written."""


# Sandbox errors: the isolated tier could not start, reach or keep an extension's worker.


class SandboxError(SymphonyError):
    """Raised when the isolated tier cannot start, reach or keep an extension's worker process."""


class SandboxUnavailable(SandboxError):
    """Raised when this platform cannot run isolated workers at all (the isolated tier needs Linux)."""


class WorkerCrashed(SandboxError):
    """Raised when an extension's worker died (a signal, an exit, its memory limit) or broke the protocol.

    ``stderr`` holds the last lines the worker wrote, ``exit_code`` its exit status (negative: the signal).
    """

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


class ProtocolError(SandboxError):
    """Raised when a worker breaks the host/worker protocol (another version, a message out of turn)."""


class WorkerTimeout(SandboxError, BudgetExceeded):
    """Raised when a worker did not answer within the time allowed; the worker was killed."""


class Quarantined(SandboxError):
    """Raised when an extension's workers crashed too often: it is not restarted until the quarantine is lifted."""


class RemoteError(ExtensionFailed):
    """Raised when extension code in an isolated worker raised; the worker itself goes on.

    The exception cannot cross the process boundary as an object, so this carries it as data:
    ``remote_type`` (its qualified class name), ``builtin`` (the nearest built-in exception class it
    derives from, e.g. ``PermissionError`` for a file the kernel refused), ``errno`` and the worker's
    ``remote_traceback``.
    """

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
    ) -> None:
        self.remote_type = remote_type
        self.builtin = builtin
        self.errno = errno
        self.remote_traceback = remote_traceback
        super().__init__(message, extension=extension, hint=hint)
