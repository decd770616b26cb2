"""Run the external programs the release tools drive: git, uv, towncrier, griffe, twine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from packaging.version import InvalidVersion, Version

from .errors import ReleaseError


def run(
    args: list[str | Path], cwd: Path, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output; a failure raises ReleaseError carrying its stderr."""
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and proc.returncode:
        command = " ".join(str(a) for a in args)
        raise ReleaseError(f"`{command}` failed ({proc.returncode}):\n{proc.stderr or proc.stdout}")
    return proc


def git(root: Path, *args: str) -> str:
    """Run git in the repository at root and return its stripped stdout."""
    return run(["git", *args], cwd=root).stdout.strip()


def find_tool(name: str) -> str:
    """Locate a command installed beside this interpreter (the release env), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ReleaseError(f"`{name}` is not installed: run this through `hatch run release:...`")
    return found


def find_uv() -> list[str]:
    """Return the uv command line, ignoring any uv.toml on the machine as CI runners have none."""
    return [find_tool("uv"), "--no-config"]


def find_root(start: Path) -> Path:
    """Return the top folder of the git repository holding start."""
    return Path(git(start, "rev-parse", "--show-toplevel"))


def list_release_tags(root: Path, distribution: str) -> list[tuple[Version, str]]:
    """List the release tags `<distribution>-v<version>` of one distribution, oldest version first."""
    prefix = f"{distribution}-v"
    tags = []
    for tag in git(root, "tag", "--list", f"{prefix}*").split():
        try:
            tags.append((Version(tag.removeprefix(prefix)), tag))
        except InvalidVersion:
            continue  # e.g. symphony-sdk-core-vnext: not a release tag
    return sorted(tags)


def tag_exists(root: Path, tag: str) -> bool:
    """Say whether a tag of that name exists in the repository."""
    return (
        run(["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}"], cwd=root, check=False).returncode == 0
    )


def clean_env(**extra: str) -> dict[str, str]:
    """Return this process's environment without what would leak the caller's venv or pytest options."""
    leaky = ("VIRTUAL_ENV", "PYTHONPATH", "PYTEST_ADDOPTS", "PYTHONHOME", "UV_PYTHON", "CONDA_PREFIX")
    env = {k: v for k, v in os.environ.items() if k not in leaky and not k.startswith(("PIP_", "HATCH_ENV"))}
    return env | extra
