"""What ``symphony validate`` reads: a project folder or a built wheel, behind one `Source` interface
(its metadata, its entry points with the line that declares each, and its files)."""

from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from symphony_core._catalog._entry_points import read_entry_points

from ._locate import line_of_entry, line_of_key
from ._report import BadTarget, Finding, Report

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class EntryPoint:
    """One entry point as the source declares it, and the line that does (None when not found)."""

    group: str
    name: str
    value: str
    line: int | None


class Source:
    """The files and metadata of a project folder or of a wheel, read the same way."""

    type: str
    distribution: str | None
    version: str | None
    requires: list[str]
    entry_points: list[EntryPoint]
    metadata_file: str
    import_root: str  # the sys.path entry that holds the extension's packages

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def read_text(self, path: str) -> str:
        raise NotImplementedError

    def python_files(self, top: str) -> list[str]:
        raise NotImplementedError

    def display(self, path: str) -> str:
        """How a message names ``path`` (relative to the import root)."""
        raise NotImplementedError


class Project(Source):
    type = "project"

    def __init__(self, folder: Path, report: Report) -> None:
        self.folder = folder
        self.metadata_file = "pyproject.toml"
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadTarget(
                f"{folder / 'pyproject.toml'} is not valid TOML: {exc}", hint="fix its syntax"
            ) from None
        project = data.get("project")
        if not isinstance(project, dict):
            raise BadTarget(
                f"{folder / 'pyproject.toml'} has no [project] table",
                hint="declare the distribution's name, version, dependencies and entry points under [project]",
            )
        self.distribution = project.get("name") if isinstance(project.get("name"), str) else None
        dynamic = project.get("dynamic") or []
        self.version = project.get("version") if isinstance(project.get("version"), str) else None
        if self.distribution is None:
            report.findings.append(
                Finding(
                    "metadata", "error", "the project has no name", "pyproject.toml", None, "project.name"
                )
            )
        if self.version is None and "version" not in dynamic:
            report.findings.append(
                Finding(
                    "metadata",
                    "error",
                    "the project has no version",
                    "pyproject.toml",
                    None,
                    "project.version",
                    'set `version = "0.1.0"` under [project]',
                )
            )
        self.requires = [dep for dep in project.get("dependencies") or [] if isinstance(dep, str)]
        self.dependencies_line = line_of_key(text, ("project", "dependencies"))
        self.entry_points = []
        groups = project.get("entry-points") or {}
        for group, points in groups.items() if isinstance(groups, dict) else ():
            if not isinstance(points, dict):
                continue
            for name, value in points.items():
                line = line_of_entry(text, group, name)
                self.entry_points.append(EntryPoint(group, name, str(value), line))
        self.import_root = str(folder / "src") if (folder / "src").is_dir() else str(folder)
        self._root = Path(self.import_root)

    def exists(self, path: str) -> bool:
        return (self._root / path).exists()

    def is_dir(self, path: str) -> bool:
        return (self._root / path).is_dir()

    def read_text(self, path: str) -> str:
        return (self._root / path).read_text(encoding="utf-8")

    def python_files(self, top: str) -> list[str]:
        base = self._root / top
        if base.is_file():
            return [top]
        return sorted(
            path.relative_to(self._root).as_posix()
            for path in base.rglob("*.py")
            if "__pycache__" not in path.parts
        )

    def display(self, path: str) -> str:
        return (self._root / path).relative_to(self.folder).as_posix()


class Wheel(Source):
    type = "wheel"

    def __init__(self, wheel: Path, report: Report) -> None:
        self.wheel = wheel
        try:
            self.zip = zipfile.ZipFile(wheel)
        except (OSError, zipfile.BadZipFile) as exc:
            raise BadTarget(f"{wheel} is not a readable wheel: {exc}", hint="build it again") from None
        self.names = set(self.zip.namelist())
        infos = sorted(
            {name.split("/", 1)[0] for name in self.names if name.split("/", 1)[0].endswith(".dist-info")}
        )
        if len(infos) != 1:
            raise BadTarget(
                f"{wheel} has {len(infos)} .dist-info folders, not one",
                hint="build it again with a standard backend",
            )
        info = infos[0]
        self.metadata_file = f"{info}/METADATA"
        headers = HeaderParser().parsestr(self._read(f"{info}/METADATA"))
        self.distribution = headers.get("Name")
        self.version = headers.get("Version")
        self.requires = list(headers.get_all("Requires-Dist") or [])
        self.requires_python = headers.get("Requires-Python")
        self.entry_points = []
        points_file = f"{info}/entry_points.txt"
        if points_file in self.names:
            self.entry_points = [EntryPoint(*point) for point in read_entry_points(self._read(points_file))]
        self.entry_points_file = points_file
        self.import_root = str(wheel)

    def _read(self, name: str) -> str:
        return self.zip.read(name).decode("utf-8")

    def exists(self, path: str) -> bool:
        return path in self.names or self.is_dir(path)

    def is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(name.startswith(prefix) for name in self.names)

    def read_text(self, path: str) -> str:
        return self._read(path)

    def python_files(self, top: str) -> list[str]:
        if f"{top}.py" in self.names:
            return [f"{top}.py"]
        return sorted(name for name in self.names if name.startswith(f"{top}/") and name.endswith(".py"))

    def display(self, path: str) -> str:
        return f"{self.wheel.name}!{path}"


def entry_point_where(source: Source, point: EntryPoint) -> tuple[str, int | None, str]:
    if source.type == "project":
        return "pyproject.toml", point.line, f'project.entry-points."{point.group}".{point.name}'
    assert isinstance(source, Wheel)
    return source.display(source.entry_points_file), point.line, f"[{point.group}] {point.name}"


def dependencies_file(source: Source) -> str:
    return "pyproject.toml" if source.type == "project" else source.display(source.metadata_file)


def dependencies_line(source: Source) -> int | None:
    return source.dependencies_line if isinstance(source, Project) else None
