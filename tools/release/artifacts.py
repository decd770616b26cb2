"""Artifact checks: what twine thinks of each sdist and wheel, what the wheels hold, and same bytes twice.

Builds every project (the four packages and the examples) twice with SOURCE_DATE_EPOCH set to the last
commit's time and fails when the two builds differ, when twine's strict check fails, or when a wheel
misses its package files, LICENSE, `py.typed` or an example's `symphony.toml`, or holds tests or caches.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .commands import clean_env, find_tool, find_uv, git, run
from .workspace import read_toml

EXTENSION_GROUPS = ("symphony.instruments", "symphony.operators", "symphony.motifs")
CACHES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}


@dataclass
class Project:
    """One buildable project and what its wheel must hold."""

    path: Path
    import_name: str
    published: bool  # the four packages; examples are published only in the rehearsal
    extension: bool = True  # ships an extension (a manifest); False for a host application like the demo

    @property
    def relpath(self) -> str:
        """The project's folder relative to the repository root."""
        return f"{self.path.parent.name}/{self.path.name}"


@dataclass
class ArtifactReport:
    """The files built and every problem found."""

    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def find_projects(root: Path) -> list[Project]:
    """List the packages and examples with the import package each wheel ships."""
    projects = []
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")) + sorted(
        root.glob("examples/*/pyproject.toml")
    ):
        data = read_toml(pyproject)
        wheel_packages = data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        published = pyproject.parent.parent.name == "packages"
        groups = data["project"].get("entry-points", {})
        extension = any(group in groups for group in EXTENSION_GROUPS)
        projects.append(
            Project(pyproject.parent, PurePosixPath(wheel_packages[0]).name, published, extension)
        )
    return projects


def build(root: Path, projects: list[Project], outdir: Path, epoch: str) -> dict[str, list[Path]]:
    """Build each project's sdist and wheel into outdir/<folder>, returning the files per project."""
    uv = find_uv()
    built = {}
    for project in projects:
        dest = outdir / project.path.name
        env = clean_env(SOURCE_DATE_EPOCH=epoch)
        run(
            [*uv, "build", "--quiet", "--sdist", "--wheel", "--out-dir", dest, project.path],
            cwd=root,
            env=env,
        )
        built[project.relpath] = sorted(p for p in dest.iterdir() if p.name.endswith((".whl", ".tar.gz")))
    return built


def check_wheel(root: Path, project: Project, wheel: Path) -> list[str]:
    """List what is wrong with one wheel's contents."""
    names = set(zipfile.ZipFile(wheel).namelist())
    problems = []
    for name in sorted(names):
        parts = PurePosixPath(name).parts
        if CACHES.intersection(parts) or name.endswith((".pyc", ".pyo")):
            problems.append(f"{wheel.name} holds a cache file: {name}")
        # A kit's project template ships the tests of the projects it generates, as `.tmpl` texts.
        is_test = (
            "tests" in parts or PurePosixPath(name).name.startswith("test_") or name.endswith("conftest.py")
        )
        if is_test and not name.endswith(".tmpl"):
            problems.append(f"{wheel.name} holds a test file: {name}")
    src = project.path / "src"
    tracked = git(root, "ls-files", "--", str((src / project.import_name).relative_to(root))).splitlines()
    expected = {str(PurePosixPath(t).relative_to(PurePosixPath(project.relpath) / "src")) for t in tracked}
    problems += [f"{wheel.name} lacks {name}" for name in sorted(expected - names)]
    if project.published:
        if f"{project.import_name}/py.typed" not in names:
            problems.append(f"{wheel.name} lacks {project.import_name}/py.typed")
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            problems.append(f"{wheel.name} lacks its LICENSE under .dist-info/licenses/")
    elif project.extension and not any(n.endswith("/symphony.toml") for n in names):
        problems.append(f"{wheel.name} lacks the extension's manifest symphony.toml")
    return problems


def check_sdist(sdist: Path) -> list[str]:
    """List caches that slipped into an sdist (sdists carry the tests on purpose)."""
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    return [
        f"{sdist.name} holds a cache file: {name}"
        for name in names
        if CACHES.intersection(PurePosixPath(name).parts) or name.endswith((".pyc", ".pyo"))
    ]


def compare_builds(first: dict[str, list[Path]], second: dict[str, list[Path]]) -> list[str]:
    """List the files whose bytes differ between two builds of the same commit."""
    problems = []
    for project, files in first.items():
        again = {p.name: p for p in second[project]}
        for path in files:
            if path.name not in again:
                problems.append(f"{path.name} was not built the second time")
            elif hash_file(path) != hash_file(again[path.name]):
                problems.append(f"{path.name} differs between two builds: the build is not reproducible")
    return problems


def hash_file(path: Path) -> str:
    """Hash a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_artifacts(root: Path, workdir: Path) -> ArtifactReport:
    """Build everything twice and run every artifact check, keeping the first build in workdir/dist."""
    projects = find_projects(root)
    epoch = git(root, "log", "-1", "--format=%ct")
    first = build(root, projects, workdir / "dist", epoch)
    second = build(root, projects, workdir / "again", epoch)
    report = ArtifactReport()
    report.problems += compare_builds(first, second)
    by_relpath = {p.relpath: p for p in projects}
    for relpath, files in first.items():
        report.files += [str(f.relative_to(workdir)) for f in files]
        for path in files:
            if path.suffix == ".whl":
                report.problems += check_wheel(root, by_relpath[relpath], path)
            else:
                report.problems += check_sdist(path)
    all_files = [f for files in first.values() for f in files]
    twine = run([find_tool("twine"), "check", "--strict", *all_files], cwd=root, check=False)
    if twine.returncode:
        report.problems.append(f"twine check --strict failed:\n{twine.stdout}{twine.stderr}")
    return report
