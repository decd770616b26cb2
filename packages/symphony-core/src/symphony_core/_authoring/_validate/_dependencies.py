"""The ``imports`` and ``dependencies`` checks: what the extension's code imports (an AST scan, nothing
is run), and whether its distribution declares what it imports and its kit."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator

from symphony_core._model._kinds import KINDS, canonical_name

from ._report import Finding, Report
from ._sources import Source, dependencies_file, dependencies_line

PRIVATE_CORE = "symphony_core"


def check_imports(source: Source, tops: list[str], report: Report) -> dict[str, tuple[str, int]]:
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


def check_dependencies(
    source: Source, kinds: set[str], imported: dict[str, tuple[str, int]], tops: set[str], report: Report
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
                    dependencies_file(source),
                    dependencies_line(source),
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
                    dependencies_file(source),
                    dependencies_line(source),
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
                    dependencies_file(source),
                    dependencies_line(source),
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
