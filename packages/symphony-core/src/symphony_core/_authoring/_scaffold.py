"""``symphony new``: render a kit's project template into a complete, working extension project.

The core knows no kit's API, so each public package ships its own template as package data and
registers it in the ``symphony.scaffolds`` entry-point group: the entry point's name is the kind
(``instrument``), its value an object naming the template folder (an ``importlib.resources``
``Traversable`` or a path). The core owns the rendering:

- every file ending in ``.tmpl`` is rendered with `string.Template` (``$module``, ``${class_name}``;
  ``$$`` for a dollar sign) and written without the suffix; other files are copied as they are;
- a path part ``__module__`` becomes the project's import name, and a leading ``dot-`` becomes ``.``
  (so ``dot-gitignore`` is written as ``.gitignore``: a real ``.gitignore`` would act inside the kit).

The variables are the fields of `ProjectNames` (``$distribution``, ``$module``, ``$id``, ``$class_name``,
...), ``$requirement`` (the range of the kit a new project depends on and targets), ``$license`` (the
project's SPDX license id), ``$holder`` (who holds its copyright) and ``$pythons`` (the Python versions
the kit supports, as a list a CI workflow's matrix reads, e.g. ``["3.10", "3.11"]``).

Besides the template, the core writes the project's ``LICENSE`` (the full text of the license chosen,
one of `LICENSES`) and makes the folder a git repository when git is installed.
"""

from __future__ import annotations

import datetime
import json
import keyword
import re
import shutil
import string
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from symphony_core._model._errors import SymphonyError
from symphony_core._model._kinds import KINDS, canonical_name
from symphony_core._model._manifest import ID_PATTERN

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover - exercised on Python 3.10 only
    from importlib.abc import Traversable

SCAFFOLDS_GROUP = "symphony.scaffolds"
TEMPLATE_SUFFIX = ".tmpl"
MODULE_PART = "__module__"
DOT_PREFIX = "dot-"
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause")
"""The licenses a project can be generated with, by SPDX id; the first is the default."""
_LICENSE_TEXTS = Path(__file__).parent / "licenses"
_PYTHON_CLASSIFIER = re.compile(r"^Programming Language :: Python :: (3\.\d+)$")
_TAKEN = frozenset({"symphony_core", "symphony_instruments", "symphony_operators", "symphony_motifs"})


class ScaffoldError(SymphonyError):
    """A project could not be generated (a missing kit, a bad name, a folder in the way)."""


class BadName(ScaffoldError):
    """The name given for the new project cannot be a distribution, an import name or an extension id."""


@dataclass(frozen=True)
class ProjectNames:
    """Every name a generated project uses, derived from the one the author gave."""

    kind: str
    distribution: str
    module: str
    id: str
    publisher: str
    class_name: str
    title: str
    package: str
    package_module: str
    year: str

    def variables(self) -> dict[str, str]:
        """The template variables: each field of this class by its name."""
        return asdict(self)


def project_names(kind: str, name: str, *, ext_id: str | None = None) -> ProjectNames:
    """Derive the distribution, import name, extension id and class name from ``name``.

    ``name`` is ``publisher-name`` (the id becomes ``publisher.name``) or an id ``publisher.name``
    (the distribution becomes ``publisher-name``); ``ext_id`` sets the id explicitly.
    """
    if kind not in KINDS:
        raise BadName(f"unknown kind '{kind}'", hint=f"use one of: {', '.join(KINDS)}")
    text = name.strip()
    if "." in text and ext_id is None:
        ext_id, text = text.lower(), text.replace(".", "-")
    if not _NAME.match(text):
        raise BadName(
            f"'{name}' cannot be a distribution name",
            hint="use letters, digits and '-', starting and ending with a letter or digit, e.g. acme-sentiment",
        )
    distribution = canonical_name(text)
    if ext_id is None:
        publisher, sep, rest = distribution.partition("-")
        if not sep:
            raise BadName(
                f"'{name}' names no publisher",
                hint=f"write it as publisher-name (e.g. acme-{distribution}; the extension id becomes "
                f"acme.{distribution}) or pass --id publisher.name",
            )
        ext_id = f"{publisher}.{rest}"
    if not re.match(ID_PATTERN, ext_id):
        raise BadName(
            f"'{ext_id}' cannot be an extension id",
            hint="an id is publisher.name in lowercase letters, digits, '-' and '_', e.g. acme.sentiment",
        )
    module = distribution.replace("-", "_")
    if not module.isidentifier() or keyword.iskeyword(module):
        raise BadName(
            f"'{module}' (from '{name}') cannot be a Python import name",
            hint="start the name with a letter, e.g. acme-sentiment",
        )
    if module in _TAKEN or module in sys.stdlib_module_names:
        raise BadName(
            f"the import name '{module}' is already taken by {'Symphony' if module in _TAKEN else 'the standard library'}",
            hint="choose a name with your publisher in front, e.g. acme-sentiment",
        )
    publisher, _, short = ext_id.partition(".")
    words = [word for word in re.split(r"[^A-Za-z0-9]+", short) if word]
    class_name = "".join(word[:1].upper() + word[1:] for word in words)
    if not class_name.isidentifier():
        class_name = kind.capitalize() + class_name
    package = KINDS[kind].package
    return ProjectNames(
        kind=kind,
        distribution=distribution,
        module=module,
        id=ext_id,
        publisher=publisher,
        class_name=class_name,
        title=" ".join(words).capitalize(),
        package=package,
        package_module=package.replace("-", "_"),
        year=str(datetime.date.today().year),
    )


def kit_requirement(package: str) -> str:
    """The range of ``package`` a new project targets: from the installed release to the next breaking one."""
    import importlib_metadata
    from packaging.version import Version

    try:
        installed = importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        raise ScaffoldError(
            f"{package} is not installed here, so a project built on it could not run",
            hint=f"pip install {package}",
        ) from None
    release = (*Version(installed).release, 0, 0)
    major, minor = release[0], release[1]
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"{package}>={major}.{minor},<{upper}"


def kit_pythons(package: str) -> list[str]:
    """The Python versions ``package`` supports: those its classifiers list, else the releases from 3.10
    to this one that its ``Requires-Python`` admits."""
    import importlib_metadata
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    try:
        metadata = importlib_metadata.metadata(package)
    except importlib_metadata.PackageNotFoundError:
        metadata = None
    classifiers = (metadata.get_all("Classifier") if metadata else None) or []
    found = {match.group(1) for match in map(_PYTHON_CLASSIFIER.match, classifiers) if match}
    if not found:
        admits = SpecifierSet((metadata.get("Requires-Python") if metadata else None) or "")
        releases = [f"3.{minor}" for minor in range(10, max(sys.version_info.minor, 10) + 1)]
        found = {release for release in releases if Version(release) in admits}
    return sorted(found, key=Version) or [f"{sys.version_info.major}.{sys.version_info.minor}"]


def license_text(spdx: str, *, year: str, holder: str) -> str:
    """The full text of the license ``spdx`` (one of `LICENSES`), for ``holder`` from ``year``."""
    if spdx not in LICENSES:
        raise ScaffoldError(
            f"no license text for '{spdx}'",
            hint=f"choose one of: {', '.join(LICENSES)} (SPDX ids); for another, generate with one of "
            "these, then replace LICENSE and `license` in pyproject.toml",
        )
    text = (_LICENSE_TEXTS / f"{spdx}.txt").read_text(encoding="utf-8")
    return string.Template(text).substitute(year=year, holder=holder)


def find_template(kind: str) -> Traversable | Path:
    """The template folder the installed kit of ``kind`` registers, or `ScaffoldError` saying what to install."""
    import importlib_metadata

    package = KINDS[kind].package
    found = [ep for ep in importlib_metadata.entry_points(group=SCAFFOLDS_GROUP) if ep.name == kind]
    if not found:
        raise ScaffoldError(
            f"no project template for {'an' if kind[0] in 'aeiou' else 'a'} {kind}: {package} is not installed here",
            hint=f"pip install {package}",
        )
    entry_point = found[0]
    try:
        template = entry_point.load()
    except Exception as exc:
        raise ScaffoldError(
            f"the {kind} template registered as '{entry_point.value}' cannot be loaded: "
            f"{type(exc).__name__}: {exc}",
            hint=f"reinstall the kit: pip install --force-reinstall {package}",
        ) from exc
    if isinstance(template, str):
        template = Path(template)
    if not isinstance(template, (Path, Traversable)) or not template.is_dir():
        raise ScaffoldError(
            f"the {kind} template registered as '{entry_point.value}' is not a folder",
            hint=f"reinstall the kit: pip install --force-reinstall {package}",
        )
    return template


def render(template: Traversable | Path, target: Path, variables: dict[str, str]) -> list[Path]:
    """Write the rendered template into ``target`` (which must not exist or be empty); return the files."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(
            f"{target} already exists and is not an empty folder",
            hint="choose another folder with --dir, or remove this one",
        )
    planned = [
        (relative, _target_path(relative, variables), source) for relative, source in _walk(template, ())
    ]
    written: list[Path] = []
    for relative, destination, source in planned:
        path = target.joinpath(*destination)
        path.parent.mkdir(parents=True, exist_ok=True)
        if source.name.endswith(TEMPLATE_SUFFIX):
            text = source.read_text(encoding="utf-8")
            try:
                rendered = string.Template(text).substitute(variables)
            except (KeyError, ValueError) as exc:
                raise ScaffoldError(
                    f"template file {'/'.join(relative)} uses an unknown or malformed placeholder: {exc}",
                    hint=f"known placeholders: {', '.join('$' + name for name in sorted(variables))}",
                ) from None
            path.write_text(rendered, encoding="utf-8")
        else:
            path.write_bytes(source.read_bytes())
        written.append(path)
    return written


def new_project(
    kind: str,
    name: str,
    target: Path | None = None,
    *,
    ext_id: str | None = None,
    license: str = LICENSES[0],
    holder: str | None = None,
    git: bool = True,
) -> Created:
    """Generate a ``kind`` extension project named ``name`` in ``target`` (default: ``./<distribution>``).

    ``license`` is an SPDX id of `LICENSES`; ``holder`` holds the copyright (default: "the authors of
    <distribution>"). With ``git``, the folder is made a git repository when git is installed.
    """
    names = project_names(kind, name, ext_id=ext_id)
    holder = holder.strip() if holder and holder.strip() else f"the authors of {names.distribution}"
    text = license_text(license, year=names.year, holder=holder)
    template = find_template(kind)
    requirement = kit_requirement(names.package)
    folder = (target if target is not None else Path.cwd() / names.distribution).absolute()
    variables = {
        **names.variables(),
        "requirement": requirement,
        "license": license,
        "holder": holder,
        "pythons": json.dumps(kit_pythons(names.package)),
    }
    files = render(template, folder, variables)
    (folder / "LICENSE").write_text(text, encoding="utf-8")
    files.append(folder / "LICENSE")
    repository = _git_init(folder) if git else False
    return Created(names, requirement, folder, sorted(files), license, repository)


def _git_init(folder: Path) -> bool:
    """Make ``folder`` a git repository (branch ``main``); False when git is missing or refuses."""
    git = shutil.which("git")
    if git is None:
        return False
    for command in ([git, "init", "--quiet", "--initial-branch=main"], [git, "init", "--quiet"]):
        try:
            done = subprocess.run(command, cwd=folder, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
        if done.returncode == 0:
            return True
    return False  # an old git without --initial-branch and a failing plain init alike


@dataclass(frozen=True)
class Created:
    """A generated project: its names, its folder and the files written."""

    names: ProjectNames
    requirement: str
    folder: Path
    files: list[Path]
    license: str = LICENSES[0]
    git: bool = False
    """Whether the folder was made a git repository."""

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict for ``symphony new --json``."""
        return {
            "folder": str(self.folder),
            "files": [str(path.relative_to(self.folder)) for path in self.files],
            **self.names.variables(),
            "requirement": self.requirement,
            "license": self.license,
            "git": self.git,
        }


def _walk(
    folder: Traversable | Path, prefix: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], Traversable]]:
    for child in sorted(folder.iterdir(), key=lambda item: item.name):
        if child.name == "__pycache__" or child.name.endswith((".pyc", ".pyo")):
            continue
        if child.is_dir():
            yield from _walk(child, (*prefix, child.name))
        else:
            yield (*prefix, child.name), child


def _target_path(relative: tuple[str, ...], variables: dict[str, str]) -> tuple[str, ...]:
    parts = []
    for part in relative:
        part = part.replace(MODULE_PART, variables["module"])
        if part.startswith(DOT_PREFIX):
            part = "." + part[len(DOT_PREFIX) :]
        if part.endswith(TEMPLATE_SUFFIX):
            part = part[: -len(TEMPLATE_SUFFIX)]
        parts.append(part)
    return tuple(parts)
