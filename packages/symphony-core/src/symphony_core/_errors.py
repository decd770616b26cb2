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
    """Raised when two installed distributions declare the same extension id; neither is used."""


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
