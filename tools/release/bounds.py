"""Check that every direct dependency has a lower bound, which lowest-direct resolution relies on."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement

from .workspace import list_project_files, read_requirements

LOWER = {">=", ">", "==", "===", "~="}


def find_unbounded(root: Path) -> list[str]:
    """List each requirement of a package or example that admits every old release of its dependency."""
    problems = []
    for pyproject in list_project_files(root):
        for raw in read_requirements(pyproject):
            requirement = Requirement(raw)
            if requirement.url or any(s.operator in LOWER for s in requirement.specifier):
                continue
            problems.append(
                f"{pyproject.relative_to(root)}: {raw!r} has no lower bound, "
                "so the oldest-dependency tests would install its first release ever"
            )
    return problems
