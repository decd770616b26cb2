"""``symphony validate``: check an extension project folder or a built wheel before it is published.

Checks, each reported against the file, line and field to fix:

- ``metadata``: the distribution's name, version and its ``symphony.*`` entry points;
- ``manifest``: each entry point's ``symphony.toml`` exists beside its module and is valid (schema, kind,
  id, version), and its assets (paths named under ``[contributes]``) are there;
- ``permissions``: every request is well-formed and justified (a real reason; paths that start with a
  known variable or ``/`` and have no ``.`` or ``..`` part; ``host:port`` pairs; sizes within limits; no
  hidden characters), as the manifest's permission models check them;
- ``entry-points``: each entry point's object exists and is an extension of its kind, and the config
  model its manifest names loads and gives a JSON Schema. This imports the extension, so it runs in a
  separate Python process (with the wheel itself on ``sys.path``, or a temporary copy of its contents
  when it holds compiled modules, which cannot be imported from a zip), never in this one;
- ``imports``: the extension imports only public packages, never ``symphony_core`` (an AST scan);
- ``dependencies``: the kit of its kind is a declared, lower-bounded dependency, and every distribution
  it imports is declared (what its kit requires counts as declared).

The core does not know the kits' APIs: kind-specific checks of ``[contributes]`` happen when the kit
activates the extension.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath
from typing import Any

from symphony_core._model._errors import ManifestError, SymphonyError
from symphony_core._model._kinds import KIND_BY_GROUP, KINDS, MANIFEST_FILE, canonical_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CHECKS = ("metadata", "manifest", "permissions", "entry-points", "imports", "dependencies")
_SCOPE_HINTS = {  # what to do about a permission field the manifest's models refused
    "reason": "say why the extension needs this access, in words shown to the person asked to consent",
    "paths": "start each path with {data}, {cache}, {home} or /, and name folders without '.' or '..'",
    "hosts": "write host:port, e.g. api.example.com:443 (`*` for any host or port)",
}
# File names under [contributes] with these suffixes are assets the build must ship beside the manifest.
ASSET_SUFFIXES = frozenset(
    {
        *(".html", ".htm", ".js", ".mjs", ".css", ".map", ".json", ".wasm"),
        *(".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".woff", ".woff2", ".ttf"),
        *(".onnx", ".txt", ".csv", ".parquet", ".arrow", ".bin"),
    }
)
PROBE_TIMEOUT = 120.0
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")
PRIVATE_CORE = "symphony_core"


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


@dataclass(frozen=True)
class _EntryPoint:
    group: str
    name: str
    value: str
    line: int | None


class _Source:
    """The files and metadata of a project folder or of a wheel, read the same way."""

    type: str
    distribution: str | None
    version: str | None
    requires: list[str]
    entry_points: list[_EntryPoint]
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


class _Project(_Source):
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
        self.dependencies_line = _line_of_key(text, ("project", "dependencies"))
        self.entry_points = []
        groups = project.get("entry-points") or {}
        for group, points in groups.items() if isinstance(groups, dict) else ():
            if not isinstance(points, dict):
                continue
            for name, value in points.items():
                line = _line_of_entry(text, group, name)
                self.entry_points.append(_EntryPoint(group, name, str(value), line))
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


class _Wheel(_Source):
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
        self.entry_points = []
        points_file = f"{info}/entry_points.txt"
        if points_file in self.names:
            group = None
            for number, raw in enumerate(self._read(points_file).splitlines(), start=1):
                line = raw.strip()
                if line.startswith("[") and line.endswith("]"):
                    group = line[1:-1].strip()
                elif line and group and not line.startswith(("#", ";")):
                    name, _, value = line.partition("=")
                    self.entry_points.append(_EntryPoint(group, name.strip(), value.strip(), number))
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


def validate(target: Path) -> Report:
    """Run every check on a project folder or a ``.whl`` file and return what was found."""
    report = Report(target=str(target), type="wheel" if target.suffix == ".whl" else "project")
    if target.is_file() and target.suffix == ".whl":
        source: _Source = _Wheel(target, report)
    elif target.is_dir() and (target / "pyproject.toml").is_file():
        source = _Project(target, report)
    else:
        raise BadTarget(
            f"{target} is neither a project folder with a pyproject.toml nor a .whl file",
            hint="give the folder of the extension's project, or a wheel built from it",
        )
    report.distribution, report.version = source.distribution, source.version
    ours = [point for point in source.entry_points if point.group in KIND_BY_GROUP]
    if not ours:
        groups = ", ".join(f'[project.entry-points."{kind.group}"]' for kind in KINDS.values())
        report.findings.append(
            Finding(
                "metadata",
                "error",
                "it declares no Symphony entry point, so no host will find an extension in it",
                source.metadata_file if source.type == "project" else source.display(source.metadata_file),
                None,
                "project.entry-points",
                f'register the extension under one of {groups}: "publisher.name" = "package:Class"',
            )
        )
    tops: set[str] = set()
    probes: list[dict[str, Any]] = []
    kinds: set[str] = set()
    for point in ours:
        checked = _check_entry_point(source, point, report)
        if checked is not None:
            top, probe = checked
            tops.add(top)
            kinds.add(KIND_BY_GROUP[point.group].name)
            if probe is not None:
                probes.append(probe)
    if probes:
        _probe(source, probes, report)
    imported = _check_imports(source, sorted(tops), report)
    _check_dependencies(source, kinds, imported, tops, report)
    return report


def _ep_where(source: _Source, point: _EntryPoint) -> tuple[str, int | None, str]:
    if source.type == "project":
        return "pyproject.toml", point.line, f'project.entry-points."{point.group}".{point.name}'
    assert isinstance(source, _Wheel)
    return source.display(source.entry_points_file), point.line, f"[{point.group}] {point.name}"


def _check_entry_point(
    source: _Source, point: _EntryPoint, report: Report
) -> tuple[str, dict[str, Any] | None] | None:
    """Check one entry point and its manifest; return its top-level package and what to probe."""
    file, line, where = _ep_where(source, point)
    kind = KIND_BY_GROUP[point.group]
    module, sep, attr = point.value.partition(":")
    module, attr = module.strip(), attr.strip()
    parts = module.split(".")
    if not sep or not attr or not all(part.isidentifier() for part in [*parts, *attr.split(".")]):
        report.findings.append(
            Finding(
                "metadata",
                "error",
                f"entry point value '{point.value}' is malformed",
                file,
                line,
                where,
                "write it as 'package.module:ClassName'",
            )
        )
        return None
    report.extensions.append(point.name)
    top = parts[0]
    package_dir = "/".join(parts)
    if source.exists(f"{top}.py") and not source.is_dir(top):
        report.findings.append(
            Finding(
                "metadata",
                "error",
                f"'{top}' is a single-file module; an extension must be a package",
                file,
                line,
                where,
                f"move the code into a folder '{top}/' with __init__.py and {MANIFEST_FILE}",
            )
        )
        return top, None
    if not (source.exists(f"{package_dir}/__init__.py") or source.exists(f"{package_dir}.py")):
        looked = source.display(package_dir)
        report.findings.append(
            Finding(
                "metadata",
                "error",
                f"entry point '{point.name}' names module '{module}', which is not in the "
                f"{source.type} (looked for {looked}/__init__.py)",
                file,
                line,
                where,
                "fix the module path, or make the build include the package"
                if source.type == "wheel"
                else "fix the module path (packages live in src/ or beside pyproject.toml)",
            )
        )
        return top, None
    manifest_path = _locate_manifest(source, parts)
    if manifest_path is None:
        report.findings.append(
            Finding(
                "manifest",
                "error",
                f"no {MANIFEST_FILE} beside module '{module}' or in a package above it",
                source.display(package_dir),
                None,
                None,
                f"put {MANIFEST_FILE} in the package folder"
                + (
                    "; the wheel left it out: include it in the build (package data)"
                    if source.type == "wheel"
                    else ""
                ),
            )
        )
        return top, None
    manifest = _check_manifest(source, manifest_path, point, kind.name, report)
    probe: dict[str, Any] = {
        "id": point.name,
        "module": module,
        "attr": attr,
        "kind": kind.name,
        "file": file,
        "line": line,
        "field": where,
    }
    if manifest is not None:
        probe["config"] = manifest.get("config")
        probe["manifest_file"] = source.display(manifest_path)
        probe["config_line"] = _line_of_key(source.read_text(manifest_path), ("config",))
    return top, probe


def _locate_manifest(source: _Source, parts: list[str]) -> str | None:
    for depth in range(len(parts), 0, -1):
        candidate = "/".join([*parts[:depth], MANIFEST_FILE])
        if source.exists(candidate) and not source.is_dir(candidate):
            return candidate
    return None


def _check_manifest(
    source: _Source, path: str, point: _EntryPoint, kind: str, report: Report
) -> dict[str, Any] | None:
    from symphony_core._model._manifest import validate_manifest

    shown = source.display(path)
    text = source.read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        report.findings.append(
            Finding("manifest", "error", f"not valid TOML: {exc}", shown, line, None, "fix the TOML syntax")
        )
        return None
    _check_assets(source, path, data, shown, text, report)
    try:
        manifest = validate_manifest(data, file=shown, distribution_version=source.version)
    except ManifestError as exc:
        for location, problem in [(p.location, p.message) for p in exc.problems] or [(shown, exc.message)]:
            named = location.split(": ", 1)[1] if ": " in location else None
            named, problem = _field_of(named, problem, data)
            loc = _without_union_tag(_parse_location(named), data) if named else ()
            field_name = _format_location(loc) if loc else None
            report.findings.append(
                Finding(
                    _check_of(loc),
                    "error",
                    problem,
                    shown,
                    _line_of_key(text, loc) if loc else None,
                    field_name,
                    _hint_for(loc, exc.hint),
                )
            )
        return None
    if manifest.kind != kind:
        report.findings.append(
            Finding(
                "manifest",
                "error",
                f"kind is '{manifest.kind}' but the entry point is in group '{point.group}'",
                shown,
                _line_of_key(text, ("kind",)),
                "kind",
                f'register it under [project.entry-points."{KINDS[manifest.kind].group}"] or fix `kind`',
            )
        )
    if manifest.id != point.name:
        report.findings.append(
            Finding(
                "manifest",
                "error",
                f"id '{manifest.id}' differs from the entry point's name '{point.name}'",
                shown,
                _line_of_key(text, ("id",)),
                "id",
                "use the manifest's id as the entry point's name",
            )
        )
    result: dict[str, Any] = manifest.model_dump(mode="json", by_alias=True)
    return result


def _field_of(named: str | None, problem: str, data: dict[str, Any]) -> tuple[str | None, str]:
    """Name the field of a whole-manifest check by its own words (``targets: a motif targets ...``)."""
    text = problem.removeprefix("Value error, ")
    if named in (None, "(top level)"):
        key, sep, rest = text.partition(": ")
        if sep and key in data:
            return key, rest
    return named, text


def _without_union_tag(loc: tuple[str | int, ...], data: dict[str, Any]) -> tuple[str | int, ...]:
    """Drop the permission type pydantic puts in a location (``permissions[2].env.reason``, and
    ``permissions[0].fs.read.paths[1]``, where the type's dot splits it in two)."""
    if len(loc) > 2 and loc[0] == "permissions" and isinstance(loc[1], int):
        listed = data.get("permissions")
        entry = listed[loc[1]] if isinstance(listed, list) and loc[1] < len(listed) else None
        tag = tuple(str(entry.get("type")).split(".")) if isinstance(entry, dict) else ()
        if tag and loc[2 : 2 + len(tag)] == tag:
            return (*loc[:2], *loc[2 + len(tag) :])
    return loc


def _check_of(loc: tuple[str | int, ...]) -> str:
    return "permissions" if loc and loc[0] == "permissions" else "manifest"


def _hint_for(loc: tuple[str | int, ...], hint: str | None) -> str | None:
    if loc and loc[0] == "permissions" and loc[-1] == "reason":
        return _SCOPE_HINTS["reason"]
    if len(loc) > 3 and loc[0] == "permissions" and isinstance(loc[-1], int):  # one path or host
        return _SCOPE_HINTS.get(str(loc[-2]), hint)
    return hint


def _check_assets(
    source: _Source, manifest_path: str, data: dict[str, Any], shown: str, text: str, report: Report
) -> None:
    folder = PurePosixPath(manifest_path).parent
    for loc, value in _strings(data.get("contributes") or {}, ("contributes",)):
        path = PurePosixPath(value)
        if "://" in value or " " in value or path.is_absolute() or path.suffix.lower() not in ASSET_SUFFIXES:
            continue
        if ".." in path.parts:
            continue  # the kit refuses paths out of the package when it reads the manifest
        if not source.exists(str(folder / path)):
            dotted = _format_location(loc)
            report.findings.append(
                Finding(
                    "manifest",
                    "error",
                    f"{dotted} names '{value}', which is not in the {source.type}",
                    shown,
                    _line_of_key(text, loc),
                    dotted,
                    "include it in the build (package data)"
                    if source.type == "wheel"
                    else f"add the file beside {MANIFEST_FILE} or fix the path",
                )
            )


def _strings(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


PROBE = r"""
import importlib, json, sys, traceback
root, requests = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, root)
results = []
for request in requests:
    result = {"id": request["id"]}
    results.append(result)
    try:
        target = importlib.import_module(request["module"])
        for part in request["attr"].split("."):
            target = getattr(target, part)
    except BaseException as exc:
        result["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        continue
    from symphony_core import Extension
    if not (isinstance(target, type) and issubclass(target, Extension)):
        result["not_extension"] = repr(target)[:200]
    else:
        result["kind"] = getattr(target, "kind", "")
        result["where"] = f"{target.__module__}.{target.__qualname__}"
    reference = request.get("config")
    if not reference:
        continue
    module, _, attr = reference.partition(":")
    try:
        model = importlib.import_module(module)
        for part in attr.split("."):
            model = getattr(model, part)
    except BaseException as exc:
        result["config_error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        continue
    from symphony_core import Config, config_schema
    if not (isinstance(model, type) and issubclass(model, Config)):
        result["config_error"] = f"{reference} is {model!r}, not a Config model"
        continue
    try:
        config_schema(model)
    except BaseException as exc:
        result["config_error"] = f"its JSON Schema cannot be made: {type(exc).__name__}: {exc}"
        continue
    try:
        model()
    except BaseException as exc:
        result["config_defaults"] = str(exc).splitlines()[0]
print(json.dumps(results))
"""


@contextmanager
def _importable(source: _Source) -> Iterator[str]:
    """The ``sys.path`` entry to import the extension from: the wheel itself when it holds only Python
    (zipimport), else a temporary copy of its contents (compiled modules cannot be imported from a zip)."""
    if not isinstance(source, _Wheel) or not any(name.endswith(NATIVE_SUFFIXES) for name in source.names):
        yield source.import_root
        return
    with tempfile.TemporaryDirectory(prefix="symphony-validate-") as folder:
        source.zip.extractall(folder)
        yield folder


def _probe(source: _Source, probes: list[dict[str, Any]], report: Report) -> None:
    """Import each entry point and config model in a separate Python, with the extension's root first on its path."""
    requests = [
        {key: probe[key] for key in ("id", "module", "attr", "config") if key in probe} for probe in probes
    ]
    try:
        with _importable(source) as root:
            done = subprocess.run(
                [sys.executable, "-I", "-c", PROBE, root, json.dumps(requests)],
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT,
                check=False,
            )
    except subprocess.TimeoutExpired:
        report.findings.append(
            Finding(
                "entry-points",
                "error",
                f"importing the extension took longer than {PROBE_TIMEOUT:g} s",
                None,
                None,
                None,
                "importing the package must not do heavy work; do it in activate()",
            )
        )
        return
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        report.findings.append(
            Finding(
                "entry-points",
                "error",
                f"importing the extension ended the Python process: {last}",
                None,
                None,
                None,
                "importing the package must not exit or crash the interpreter",
            )
        )
        return
    for probe, result in zip(probes, json.loads(done.stdout), strict=True):
        ep = (probe["file"], probe["line"], probe["field"])
        kind = probe["kind"]
        if "error" in result:
            report.findings.append(
                Finding(
                    "entry-points",
                    "error",
                    f"'{probe['module']}:{probe['attr']}' cannot be imported: {result['error']}",
                    *ep,
                    "fix the import error (is every dependency declared and installed?)",
                )
            )
        elif "not_extension" in result:
            package = KINDS[kind].package.replace("-", "_")
            report.findings.append(
                Finding(
                    "entry-points",
                    "error",
                    f"'{probe['module']}:{probe['attr']}' is {result['not_extension']}, not an "
                    f"extension class",
                    *ep,
                    f"point the entry point at a subclass of {package}'s base class",
                )
            )
        elif result.get("kind") != kind:
            report.findings.append(
                Finding(
                    "entry-points",
                    "error",
                    f"{result['where']} is an extension of kind '{result.get('kind') or '?'}', "
                    f"registered as a {kind}",
                    *ep,
                    f"derive it from the {KINDS[kind].package} base class",
                )
            )
        config = probe.get("config")
        where = (probe.get("manifest_file"), probe.get("config_line"), "config")
        if "config_error" in result:
            report.findings.append(
                Finding(
                    "entry-points",
                    "error",
                    f"the config model '{config}' does not load: {result['config_error']}",
                    *where,
                    "name a Config subclass as module:Class, importable from the package",
                )
            )
        elif "config_defaults" in result:
            report.findings.append(
                Finding(
                    "entry-points",
                    "warning",
                    f"the config model '{config}' has no valid defaults "
                    f"({result['config_defaults']}): a host must be given values before it can start the extension",
                    *where,
                    "give every field a default if the extension can run without being configured",
                )
            )


def _check_imports(source: _Source, tops: list[str], report: Report) -> dict[str, tuple[str, int]]:
    """Scan the extension's code; report imports of the private core; return each top-level import's first use."""
    imported: dict[str, tuple[str, int]] = {}
    for top in tops:
        for path in source.python_files(top):
            shown = source.display(path)
            try:
                tree = ast.parse(source.read_text(path), filename=shown)
            except SyntaxError as exc:
                report.findings.append(
                    Finding(
                        "imports",
                        "error",
                        f"cannot be parsed: {exc.msg}",
                        shown,
                        exc.lineno,
                        None,
                        "fix the syntax",
                    )
                )
                continue
            for name, line in _imports(tree):
                root = name.split(".")[0]
                imported.setdefault(root, (shown, line))
                if root == PRIVATE_CORE:
                    report.findings.append(
                        Finding(
                            "imports",
                            "error",
                            f"imports {name}, Symphony's private core",
                            shown,
                            line,
                            None,
                            "import what you need from your kit's package (symphony_instruments, "
                            "symphony_operators or symphony_motifs), which re-exports it",
                        )
                    )
    return imported


def _imports(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


def _check_dependencies(
    source: _Source, kinds: set[str], imported: dict[str, tuple[str, int]], tops: set[str], report: Report
) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    declared: dict[str, Requirement] = {}
    for text in source.requires:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            report.findings.append(
                Finding(
                    "dependencies",
                    "error",
                    f"'{text}' is not a valid requirement: {exc}",
                    _deps_file(source),
                    _deps_line(source),
                    "project.dependencies",
                    None,
                )
            )
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            declared[canonical_name(requirement.name)] = requirement
    for kind in sorted(kinds):
        package = KINDS[kind].package
        wanted = declared.get(package)
        if wanted is None:
            report.findings.append(
                Finding(
                    "dependencies",
                    "error",
                    f"{_article(kind)} {kind} needs {package}, which is not a declared dependency",
                    _deps_file(source),
                    _deps_line(source),
                    "project.dependencies",
                    f'add "{package}>=X.Y" (the release you built against) to the dependencies',
                )
            )
        elif not any(spec.operator in (">=", ">", "==", "~=", "===") for spec in wanted.specifier):
            report.findings.append(
                Finding(
                    "dependencies",
                    "warning",
                    f"the dependency '{wanted}' has no lower bound",
                    _deps_file(source),
                    _deps_line(source),
                    "project.dependencies",
                    f'require at least the release you built against, e.g. "{package}>=0.1"',
                )
            )
    import importlib_metadata

    providers = importlib_metadata.packages_distributions()
    kits = {KINDS[kind].package for kind in kinds}
    promised = set(declared) | {name for kit in kits for name in _closure(kit)}
    everything = promised | {name for dep in declared for name in _closure(dep)}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for name, (file, line) in sorted(imported.items()):
        if name in stdlib or name in tops or name == PRIVATE_CORE:
            continue
        dists = {canonical_name(dist) for dist in providers.get(name, [])}
        if dists & promised or canonical_name(name) in promised:
            continue
        if dists & everything:
            report.findings.append(
                Finding(
                    "dependencies",
                    "warning",
                    f"imports {name}, which comes only indirectly, as a dependency of a declared dependency",
                    file,
                    line,
                    None,
                    f"declare {' or '.join(sorted(dists))} in the dependencies, with a lower bound",
                )
            )
        elif dists:
            report.findings.append(
                Finding(
                    "dependencies",
                    "error",
                    f"imports {name}, but no declared dependency provides it",
                    file,
                    line,
                    None,
                    f"declare {' or '.join(sorted(dists))} in the dependencies, with a lower bound",
                )
            )
        else:
            report.findings.append(
                Finding(
                    "dependencies",
                    "error",
                    f"imports {name}, which no declared dependency provides and no "
                    "installed distribution has",
                    file,
                    line,
                    None,
                    "declare the distribution that provides it (and install it here to validate)",
                )
            )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _deps_file(source: _Source) -> str:
    return "pyproject.toml" if source.type == "project" else source.display(source.metadata_file)


def _deps_line(source: _Source) -> int | None:
    return source.dependencies_line if isinstance(source, _Project) else None


def _closure(name: str) -> set[str]:
    """The installed distributions ``name`` requires, directly or not (its own name included)."""
    import importlib_metadata
    from packaging.requirements import InvalidRequirement, Requirement

    seen: set[str] = set()
    pending = [canonical_name(name)]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            requires = importlib_metadata.requires(current) or []
        except importlib_metadata.PackageNotFoundError:
            continue
        for text in requires:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonical_name(requirement.name))
    return seen


# Where a key is in a TOML file, for messages that name a line.

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _parse_location(text: str) -> tuple[str | int, ...]:
    """``permissions[0].reason`` as ``("permissions", 0, "reason")``."""
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return tuple(parts)


def _format_location(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*[=.]")


def _line_of_key(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line of the key at ``loc`` (or of the table that holds it), or None if it cannot be found."""
    lines = text.splitlines()
    headers: list[tuple[int, tuple[str, ...], int | None]] = []
    counts: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(lines, start=1):
        match = _HEADER.match(line)
        if match:
            path = tuple(part.strip().strip("\"'") for part in match.group(2).split("."))
            if match.group(1) == "[[":
                index = counts.get(path, 0)
                counts[path] = index + 1
                headers.append((number, path, index))
            else:
                headers.append((number, path, None))
    best: tuple[int, int] | None = None  # (header line, how many parts of loc it covers)
    for number, path, position in headers:
        table: tuple[str | int, ...] = (*path, position) if position is not None else path
        if tuple(loc[: len(table)]) == table and (best is None or len(table) >= best[1]):
            best = (number, len(table))
    start, consumed = best if best is not None else (0, 0)
    rest = [part for part in loc[consumed:] if isinstance(part, str)]
    end = next((number for number, _, _ in headers if number > start), len(lines) + 1)
    if rest:
        pattern = _key_pattern(rest[0])
        for number in range(start + 1, end):
            if pattern.match(lines[number - 1]):
                return number
    return start or None


def _line_of_entry(text: str, group: str, name: str) -> int | None:
    lines = text.splitlines()
    table = None
    for number, line in enumerate(lines, start=1):
        match = _HEADER.match(line)
        if match:
            table = match.group(2).replace(" ", "")
            continue
        if table in (f'project.entry-points."{group}"', f"project.entry-points.'{group}'") and _key_pattern(
            name
        ).match(line):
            return number
    return None
