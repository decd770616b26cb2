"""The distributions of the workspace as the release tools see them: names, folders, versions, ranges."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .errors import ReleaseError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CORE = "symphony-sdk-core"
# The PyPI name `symphony-core` belongs to an unrelated project: resolving it is dependency confusion.
SQUATTED = "symphony-core"


@dataclass(frozen=True)
class Package:
    """One distribution under packages/: where it lives and what it declares."""

    root: Path
    folder: str
    distribution: str
    import_name: str
    version: Version
    dependencies: tuple[str, ...]

    @property
    def path(self) -> Path:
        """The package's folder."""
        return self.root / "packages" / self.folder

    @property
    def relpath(self) -> str:
        """The package's folder relative to the repository root, as git names it."""
        return f"packages/{self.folder}"

    @property
    def src(self) -> Path:
        """The folder holding the import package."""
        return self.path / "src"

    @property
    def changes(self) -> Path:
        """The folder of change fragments waiting for the next release."""
        return self.path / "changes"

    @property
    def init(self) -> Path:
        """The import package's `__init__.py`, which carries `__version__`."""
        return self.src / self.import_name / "__init__.py"

    @property
    def short(self) -> str:
        """The name used in matrix cells: `core`, `instruments`, `operators`, `motifs`."""
        return self.folder.removeprefix("symphony-")

    @property
    def public(self) -> bool:
        """Say whether extension authors depend on it (everything but the core)."""
        return self.distribution != CORE

    def tag(self, version: Version | str) -> str:
        """Name the release tag of one version of this distribution."""
        return f"{self.distribution}-v{version}"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file."""
    return tomllib.loads(path.read_text())


def find_requirement(requirements: list[str], distribution: str) -> str | None:
    """Return the requirement on one distribution among requirement strings, as written."""
    for raw in requirements:
        if canonicalize_name(Requirement(raw).name) == distribution:
            return raw
    return None


def load_package(root: Path, pyproject: Path) -> Package:
    """Read one package's pyproject.toml."""
    data = read_toml(pyproject)
    project = data["project"]
    wheel_packages = data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return Package(
        root=root,
        folder=pyproject.parent.name,
        distribution=canonicalize_name(project["name"]),
        import_name=Path(wheel_packages[0]).name,
        version=Version(project["version"]),
        dependencies=tuple(project.get("dependencies", [])),
    )


def load_packages(root: Path) -> list[Package]:
    """Read every distribution under packages/, the core first."""
    packages = [load_package(root, p) for p in sorted(root.glob("packages/*/pyproject.toml"))]
    if not any(p.distribution == CORE for p in packages):
        raise ReleaseError(f"no {CORE} under {root / 'packages'}: run this from the Symphony repository")
    return sorted(packages, key=lambda p: (p.public, p.folder))


def find_package(packages: list[Package], name: str) -> Package:
    """Find a package by distribution, folder or short name."""
    for package in packages:
        if canonicalize_name(name) in (package.distribution, package.folder, package.short):
            return package
    raise ReleaseError(f"no package called {name!r}: one of {', '.join(p.distribution for p in packages)}")


def list_project_files(root: Path) -> list[Path]:
    """List the pyproject.toml of every buildable project: the packages, then the examples."""
    return sorted(root.glob("packages/*/pyproject.toml")) + sorted(root.glob("examples/*/pyproject.toml"))


def read_requirements(pyproject: Path) -> list[str]:
    """List every requirement a pyproject.toml declares: dependencies, extras and build requirements."""
    data = read_toml(pyproject)
    project = data.get("project", {})
    extras = project.get("optional-dependencies", {}).values()
    build = data.get("build-system", {}).get("requires", [])
    return [*project.get("dependencies", []), *(r for reqs in extras for r in reqs), *build]


def find_requirement_on(pyproject: Path, distribution: str) -> str | None:
    """Return the dependency string a pyproject.toml declares on one distribution, as written."""
    return find_requirement(read_toml(pyproject).get("project", {}).get("dependencies", []), distribution)
