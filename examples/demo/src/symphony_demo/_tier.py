"""Which enforcement tier the demo runs in: the isolated tier where this machine has it, else the guard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GUARD_IS_NOT_A_SANDBOX = (
    "the in-process guard checks only what Python reports (files, sockets, programs); it is not a "
    "sandbox: native code such as polars and onnxruntime bypasses it"
)


@dataclass(frozen=True)
class Tier:
    """The tier chosen, why, and what it enforces on this machine (as `symphony doctor` probed it)."""

    isolation: str
    """``isolated`` or ``guard``: the ``isolation`` given to `symphony_core.Host`."""
    why: str
    summary: str
    enforced: dict[str, str] = field(default_factory=dict)
    not_enforced: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "isolation": self.isolation,
            "why": self.why,
            "summary": self.summary,
            "enforced": self.enforced,
            "not_enforced": self.not_enforced,
        }


def choose(wanted: str, home: Path) -> Tier:
    """The tier to run in: ``wanted`` is ``auto``, ``isolated`` or ``guard``.

    ``auto`` asks `symphony doctor --json` what the kernel offers and takes the isolated tier when
    workers can be restricted there (Linux with Landlock), else the guard, saying why.
    """
    if wanted == "guard":
        return Tier("guard", "asked for with --isolation guard", GUARD_IS_NOT_A_SANDBOX)
    probed = _doctor(home)
    sandbox = probed.get("sandbox") if probed else None
    if not isinstance(sandbox, dict):
        reason = "`symphony doctor --json` did not answer, so nothing is known about this kernel"
        return _guard_or_fail(wanted, reason)
    enforced = {str(key): str(value) for key, value in (sandbox.get("enforced") or {}).items()}
    gaps = [str(gap) for gap in sandbox.get("not_enforced") or []]
    summary = str((probed or {}).get("enforcement", {}).get("isolated", ""))
    if not sandbox.get("supported"):
        return _guard_or_fail(
            wanted, f"the isolated tier needs Linux; this is {sandbox.get('platform')}", gaps
        )
    if not sandbox.get("landlock_abi"):
        return _guard_or_fail(
            wanted, "this kernel has no Landlock, so workers cannot be kept to their files", gaps
        )
    why = (
        "asked for with --isolation isolated"
        if wanted == "isolated"
        else "this machine has it (symphony doctor)"
    )
    return Tier("isolated", why, summary, enforced, gaps)


def _guard_or_fail(wanted: str, reason: str, gaps: list[str] | None = None) -> Tier:
    if wanted == "isolated":
        raise SystemExit(f"error: the isolated tier is not available here: {reason}")
    return Tier("guard", reason, GUARD_IS_NOT_A_SANDBOX, {}, gaps or [])


def _doctor(home: Path) -> dict[str, Any] | None:
    """`symphony doctor --json`, run as its own process (the probe starts test processes and cgroups)."""
    command = _symphony()
    if command is None:
        return None
    try:
        done = subprocess.run(
            [command, "--home", str(home), "doctor", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        data = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _symphony() -> str | None:
    """The `symphony` command of this environment (beside its Python), else the one on PATH."""
    beside = Path(sys.executable).with_name("symphony")
    if beside.is_file():
        return str(beside)
    return shutil.which("symphony")
