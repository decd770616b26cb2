"""What ``symphony validate`` found: each problem as a `Finding`, all of them in a `Report`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from symphony_core._model._errors import SymphonyError

CHECKS = ("metadata", "manifest", "permissions", "entry-points", "imports", "dependencies")


class BadTarget(SymphonyError):
    """What was given to validate is neither a project folder (with pyproject.toml) nor a wheel."""


@dataclass(frozen=True)
class Finding:
    """One problem found: which check, how bad, where (file, line, field) and what to do."""

    check: str
    severity: str  # "error" or "warning"
    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    hint: str | None = None

    @property
    def where(self) -> str:
        """``file:line`` (or the file alone, or nothing) for messages."""
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Report:
    """Everything `validate` found about one project or wheel."""

    target: str
    type: str  # "project" or "wheel"
    distribution: str | None = None
    version: str | None = None
    extensions: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """The findings that make the target invalid."""
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """The findings worth fixing that do not make the target invalid."""
        return [finding for finding in self.findings if finding.severity == "warning"]

    def outcome(self, check: str) -> str:
        """``passed``, ``warned`` or ``failed`` for one check."""
        severities = {finding.severity for finding in self.findings if finding.check == check}
        return "failed" if "error" in severities else "warned" if severities else "passed"

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict for ``symphony validate --json``."""
        return {
            "target": self.target,
            "type": self.type,
            "distribution": self.distribution,
            "version": self.version,
            "extensions": self.extensions,
            "valid": not self.errors,
            "checks": {check: self.outcome(check) for check in CHECKS},
            "findings": [asdict(finding) for finding in self.findings],
        }
