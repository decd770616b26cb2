"""The ``metadata``, ``manifest`` and ``permissions`` checks of each entry point: its value, its
module's place in the source, its manifest (schema, kind, id, permissions) and the assets it names."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from symphony_core._catalog._recorded import Recorded, RecordedExtension
from symphony_core._model._errors import EntryPointError, ManifestError
from symphony_core._model._kinds import KIND_BY_GROUP, KINDS, MANIFEST_FILE

from ._locate import format_location, line_of_key, parse_location
from ._report import Finding, Report
from ._sources import EntryPoint, Source, Wheel, entry_point_where

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

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


def check_entry_point(
    source: Source, point: EntryPoint, report: Report
) -> tuple[str, dict[str, Any] | None] | None:
    """Check one entry point and its manifest; return its top-level package and what to probe."""
    file, line, where = entry_point_where(source, point)
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
        probe["config_line"] = line_of_key(source.read_text(manifest_path), ("config",))
    return top, probe


def _locate_manifest(source: Source, parts: list[str]) -> str | None:
    for depth in range(len(parts), 0, -1):
        candidate = "/".join([*parts[:depth], MANIFEST_FILE])
        if source.exists(candidate) and not source.is_dir(candidate):
            return candidate
    return None


def _check_manifest(
    source: Source, path: str, point: EntryPoint, kind: str, report: Report
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
            loc = _without_union_tag(parse_location(named), data) if named else ()
            field_name = format_location(loc) if loc else None
            report.findings.append(
                Finding(
                    _check_of(loc),
                    "error",
                    problem,
                    shown,
                    line_of_key(text, loc) if loc else None,
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
                line_of_key(text, ("kind",)),
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
                line_of_key(text, ("id",)),
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
    source: Source, manifest_path: str, data: dict[str, Any], shown: str, text: str, report: Report
) -> None:
    folder = PurePosixPath(manifest_path).parent
    for loc, value in _strings(data.get("contributes") or {}, ("contributes",)):
        path = PurePosixPath(value)
        if "://" in value or " " in value or path.is_absolute() or path.suffix.lower() not in ASSET_SUFFIXES:
            continue
        if ".." in path.parts:
            continue  # the kit refuses paths out of the package when it reads the manifest
        if not source.exists(str(folder / path)):
            dotted = format_location(loc)
            report.findings.append(
                Finding(
                    "manifest",
                    "error",
                    f"{dotted} names '{value}', which is not in the {source.type}",
                    shown,
                    line_of_key(text, loc),
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


def check_recorded(source: Wheel, report: Report) -> None:
    """A wheel's recorded copy of its manifests (the build hook's) says what its manifests say: a host
    that finds the copy vouched for by ``RECORD`` reads it instead of them."""
    from symphony_core._authoring._recording import record_manifests
    from symphony_core._catalog._recorded import RECORDED_FILE, decode_recorded

    name = f"{source.metadata_file.split('/', 1)[0]}/{RECORDED_FILE}"
    if name not in source.names:
        return
    copy = decode_recorded(source.zip.read(name))
    points: dict[str, dict[str, str]] = {}
    for point in source.entry_points:
        if point.group in KIND_BY_GROUP:
            points.setdefault(point.group, {})[point.name] = point.value
    manifests = {path: source.zip.read(path) for path in source.names if path.endswith(f"/{MANIFEST_FILE}")}
    try:
        made = record_manifests(
            points, manifests, version=source.version or "0", requires_python=source.requires_python
        )
    except (ManifestError, EntryPointError):
        return  # the manifest and metadata checks report it
    expected = None if made is None else decode_recorded(made)
    if copy is None or expected is None:
        problem = "is malformed or of a format this core does not read"
    elif copy.requires_python != expected.requires_python or _by_point(copy) != _by_point(expected):
        problem = "disagrees with the wheel's entry points, symphony.toml files or Requires-Python"
    else:
        return
    report.findings.append(
        Finding(
            "manifest",
            "error",
            f"the wheel's recorded copy of its manifests {problem}: hosts read the copy instead of the "
            "manifests when the installed files vouch for it",
            source.display(name),
            None,
            None,
            "build the wheel again from the project (the build hook writes the copy), and never edit a built "
            "wheel",
        )
    )


def _by_point(recorded: Recorded) -> dict[tuple[str, str], RecordedExtension]:
    return {(entry.group, entry.name): entry for entry in recorded.extensions}
