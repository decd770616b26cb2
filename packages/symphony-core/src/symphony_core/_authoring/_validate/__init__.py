"""``symphony validate``: check an extension project folder or a built wheel before it is published.

Checks, each reported against the file, line and field to fix:

- ``metadata``: the distribution's name, version and its ``symphony.*`` entry points;
- ``manifest``: each entry point's ``symphony.toml`` exists beside its module and is valid (schema, kind,
  id, version), and its assets (paths named under ``[contributes]``) are there; a wheel's recorded copy
  of its manifests (the build hook's) says what they say;
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

`validate` runs the checks in that order over a `Source` (``_sources``: a project folder or a wheel):
``_checks`` checks each entry point and its manifest, ``_probe`` imports them in a separate Python,
``_dependencies`` scans imports and declared dependencies, and ``_locate`` finds the line of a TOML key
for each finding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from symphony_core._model._kinds import KIND_BY_GROUP, KINDS

from ._checks import check_entry_point, check_recorded
from ._dependencies import check_dependencies, check_imports
from ._probe import probe_entry_points
from ._report import CHECKS, BadTarget, Finding, Report
from ._sources import Project, Source, Wheel

__all__ = ["CHECKS", "BadTarget", "Finding", "Report", "validate"]


def validate(target: Path) -> Report:
    """Run every check on a project folder or a ``.whl`` file and return what was found."""
    report = Report(target=str(target), type="wheel" if target.suffix == ".whl" else "project")
    if target.is_file() and target.suffix == ".whl":
        source: Source = Wheel(target, report)
    elif target.is_dir() and (target / "pyproject.toml").is_file():
        source = Project(target, report)
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
        checked = check_entry_point(source, point, report)
        if checked is not None:
            top, probe = checked
            tops.add(top)
            kinds.add(KIND_BY_GROUP[point.group].name)
            if probe is not None:
                probes.append(probe)
    if isinstance(source, Wheel):
        check_recorded(source, report)
    if probes:
        probe_entry_points(source, probes, report)
    imported = check_imports(source, sorted(tops), report)
    check_dependencies(source, kinds, imported, tops, report)
    return report
