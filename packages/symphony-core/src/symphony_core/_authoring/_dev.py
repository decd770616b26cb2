"""``symphony dev``: run an extension project in a real host, and restart it each time a file is saved.

The project runs from its own folder. Its distribution's metadata (name, version, entry points and
requirements, from ``pyproject.toml``) is written to a folder of the host's cache, and the host's path
starts with that folder and the project's import root: the host finds the project as it finds an
editable install, ahead of any installed copy of the same distribution, and its workers import the code
from the folder the author edits. Nothing is installed into the environment.

What a saved file does:

- ``pyproject.toml``: its metadata is written again, then as for a manifest;
- a manifest or a file of the package: the quick checks run first (metadata, manifest, permissions,
  Python syntax). A file that fails them is reported with its file and line, and what runs is left as it
  is; otherwise every extension of the project is restarted, in new workers that import the new code;
- the extension's config file (``<home>/config/<id>.toml``): it is restarted, since config is read at start;
- a file of a motif's page folder: nothing restarts, the open pages reload (a kit-side `DevView`);
- anything else (tests, docs): nothing.

An error raised while the new version is imported or activated stops it until the next save; the error
names the file and line of the project it came from.
"""

from __future__ import annotations

import pkgutil
import re
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal, Protocol

from symphony_core._model._errors import LifecycleError, RemoteError, SymphonyError
from symphony_core._model._kinds import KIND_BY_GROUP, KINDS, MANIFEST_FILE, canonical_id, canonical_name
from symphony_core._store._home import Home

from ._distributions import write_distribution
from ._validate import BadTarget, Finding, Report
from ._validate._checks import check_entry_point
from ._validate._sources import Project

if TYPE_CHECKING:
    from symphony_core._runtime._host import Host

WATCHFILES = "watchfiles>=1.0"
"""What ``symphony dev`` watches files with: the core's ``dev`` extra."""
STEP_MS = 30
"""How long the watcher waits for more changes after one before it reports them: an editor that
writes a file in several steps is seen as one save."""
DevTier = Literal["isolated", "guard"]
Change = Literal["project", "manifest", "code", "config", "page"]
_RESTARTS: frozenset[Change] = frozenset({"project", "manifest", "code", "config"})
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)', re.MULTILINE)


class NotAnExtension(SymphonyError):
    """The folder given to ``symphony dev`` is not an extension project (no pyproject.toml, no Symphony
    entry point, no manifest)."""


class DevView(Protocol):
    """What a kit shows for one of its extensions while it is developed (a motif's page, served), made by
    the kind's ``dev`` factory: ``factory(host, extension, port=port)``."""

    url: str
    """Where the author opens it."""
    root: Path
    """The folder of the files it serves: a save there reloads the open pages, and restarts nothing."""

    def refresh(self, *, manifest: bool) -> int:
        """Tell every open page to reload (after reading the manifest again when ``manifest``); returns
        how many were told."""

    def close(self) -> None:
        """Stop serving."""


# What the loop reports, rendered by the command line.


@dataclass(frozen=True)
class Ready:
    """The project's extensions run (or were tried: see the `Failed` before it)."""

    extensions: tuple[str, ...]
    tier: str
    ms: float
    pages: dict[str, str] = field(default_factory=dict)
    """Each served extension's URL."""


@dataclass(frozen=True)
class Reloaded:
    """The extensions were restarted after a save."""

    extensions: tuple[str, ...]
    ms: float
    changed: tuple[str, ...]
    """The saved files, relative to the project's folder."""


@dataclass(frozen=True)
class Refreshed:
    """The open pages of a motif were told to reload."""

    extension: str
    pages: int
    ms: float


@dataclass(frozen=True)
class Rejected:
    """A save that fails the quick checks: nothing was restarted."""

    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Failed:
    """An extension could not be started; ``file`` and ``line`` say where in the project, when known."""

    extension: str
    message: str
    hint: str | None
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Unconsented:
    """The extension asks for permissions that were not granted, so it will not start."""

    extension: str


DevEvent = Ready | Reloaded | Refreshed | Rejected | Failed | Unconsented
Consent = Callable[["Host", str], None]
"""Asked before an extension whose permissions are not all granted starts: shows them and grants them, or not."""


@dataclass(frozen=True)
class DevExtension:
    """One extension the project declares."""

    id: str
    kind: str
    group: str
    entry_point: str
    manifest: Path
    package: Path


@dataclass(frozen=True)
class DevProject:
    """An extension project as ``symphony dev`` runs it: its folder, metadata and extensions."""

    folder: Path
    distribution: str
    version: str
    requires: tuple[str, ...]
    import_root: Path
    extensions: tuple[DevExtension, ...]

    @classmethod
    def read(cls, folder: Path) -> DevProject:
        """Read the project at ``folder``; `NotAnExtension` names what is missing and what to do."""
        folder = folder.resolve()
        make = "or make one: symphony new operator acme-totals"
        if not folder.is_dir():
            raise NotAnExtension(
                f"{folder} is not a folder", hint=f"give the folder of an extension project, {make}"
            )
        if not (folder / "pyproject.toml").is_file():
            raise NotAnExtension(
                f"{folder} is not an extension project: it has no pyproject.toml",
                hint=f"run `symphony dev` in the folder of an extension project (or pass it: symphony dev PATH), {make}",
            )
        try:
            source = Project(folder, Report(str(folder), "project"))
        except BadTarget as exc:
            raise NotAnExtension(exc.message, hint=exc.hint) from None
        if source.distribution is None:
            raise NotAnExtension(
                f"{folder / 'pyproject.toml'} names no distribution",
                hint='set `name = "publisher-name"` under [project]',
            )
        import_root = Path(source.import_root)
        extensions = []
        for point in source.entry_points:
            kind = KIND_BY_GROUP.get(point.group)
            if kind is None:
                continue
            module = point.value.partition(":")[0].strip()
            manifest = _manifest_of(import_root, module)
            if manifest is None:
                raise NotAnExtension(
                    f"the entry point {point.name!r} names module {module!r}, and there is no {MANIFEST_FILE} "
                    f"beside it in {import_root} (nor in a package above it)",
                    hint=f"put the extension's manifest, {MANIFEST_FILE}, in its package folder; "
                    f"`symphony new {kind.name} NAME` writes a complete one",
                )
            top = import_root / module.split(".")[0]
            extensions.append(DevExtension(point.name, kind.name, point.group, point.value, manifest, top))
        if not extensions:
            groups = ", ".join(f'[project.entry-points."{kind.group}"]' for kind in KINDS.values())
            raise NotAnExtension(
                f"{folder / 'pyproject.toml'} declares no Symphony entry point, so it is not an extension project",
                hint=f'register the extension under one of {groups}: "publisher.name" = "package:Class"',
            )
        return cls(
            folder,
            source.distribution,
            source.version or "0+dev",
            tuple(source.requires),
            import_root,
            tuple(extensions),
        )

    def missing(self) -> list[str]:
        """The requirements of the project this Python does not satisfy (extras aside)."""
        from importlib.metadata import PackageNotFoundError, version

        from packaging.requirements import InvalidRequirement, Requirement

        missing = []
        for text in self.requires:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue  # the checks report it against its line
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                found = version(requirement.name)
            except PackageNotFoundError:
                missing.append(text)
                continue
            if not requirement.specifier.contains(found, prereleases=True):
                missing.append(f"{text} (found {found})")
        return missing


def _manifest_of(import_root: Path, module: str) -> Path | None:
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        candidate = import_root.joinpath(*parts[:depth], MANIFEST_FILE)
        if candidate.is_file():
            return candidate
    return None


def check(project: DevProject) -> Report:
    """The quick checks of a save, importing nothing: metadata, manifests, permissions, Python syntax."""
    report = Report(str(project.folder), "project")
    try:
        source = Project(project.folder, report)
    except BadTarget as exc:
        report.findings.append(
            Finding("metadata", "error", exc.message, "pyproject.toml", None, None, exc.hint)
        )
        return report
    for point in source.entry_points:
        if point.group in KIND_BY_GROUP:
            check_entry_point(source, point, report)
    for package in sorted({extension.package for extension in project.extensions}):
        files = [package] if package.is_file() else sorted(package.rglob("*.py"))
        for path in files:
            if "__pycache__" not in path.parts:
                report.findings.extend(_syntax(path, project.folder))
    return report


def _syntax(path: Path, folder: Path) -> list[Finding]:
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return [
            Finding(
                "syntax",
                "error",
                f"{type(exc).__name__}: {exc.msg}",
                _shown(path, folder),
                exc.lineno,
                None,
                "fix the code there and save again",
            )
        ]
    except (OSError, ValueError) as exc:  # unreadable, or NUL bytes
        return [Finding("syntax", "error", str(exc), _shown(path, folder), None, None, None)]
    return []


def _shown(path: Path | str, folder: Path) -> str:
    try:
        return Path(path).resolve().relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def located(error: BaseException, folder: Path) -> tuple[str, int] | None:
    """The file (relative to ``folder``) and line of the project's code an error came from: its innermost
    frame in ``folder``, through its causes, in this process or in a worker."""
    inside = str(folder) + "/"
    found: tuple[str, int] | None = None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames: list[tuple[str, int]] = []
        if isinstance(current, RemoteError):
            # A worker's traceback crosses as text in the standard format; its frames are read back.
            frames = [(m["file"], int(m["line"])) for m in _FRAME.finditer(current.remote_traceback)]
        elif current.__traceback__ is not None:
            frames = [
                (frame.filename, frame.lineno or 0) for frame in traceback.extract_tb(current.__traceback__)
            ]
        if isinstance(current, SyntaxError) and current.filename and current.lineno:
            frames.append((current.filename, current.lineno))
        ours = [(file, line) for file, line in frames if file.startswith(inside)]
        if ours:
            found = (_shown(ours[-1][0], folder), ours[-1][1])
        current = current.__cause__ or current.__context__
    return found


class DevSession:
    """One project run in a real host: start it, then apply saved files (`apply`) or watch for them (`run`)."""

    def __init__(
        self,
        project: DevProject,
        *,
        home: str | Path | None = None,
        tier: DevTier = "isolated",
        serve: bool = True,
        port: int = 0,
        consent: Consent | None = None,
        report: Callable[[DevEvent], None] = lambda event: None,
        actor: str = "dev",
    ) -> None:
        self.project = project
        self.home = Home.resolve(home)
        self.tier: DevTier = tier
        self.serve = serve
        self.port = port
        self.consent = consent
        self.report = report
        self.actor = actor
        self.site = self.home.cache_dir / "dev" / canonical_name(project.distribution)
        self.views: dict[str, DevView] = {}
        self.host: Host | None = None
        self._path_added = False

    # Starting and stopping

    def start(self) -> None:
        """Write the project's metadata, open the host, check the project and start its extensions."""
        from symphony_core._runtime._host import Host

        began = time.perf_counter()
        self._write_metadata()
        if self.tier == "guard" and str(self.project.import_root) not in sys.path:
            sys.path.insert(0, str(self.project.import_root))  # this process imports the code itself
            self._path_added = True
        self.home.config_dir.mkdir(parents=True, exist_ok=True)
        path = [str(self.site), str(self.project.import_root), *sys.path]
        self.host = Host(self.home.root, path=path, isolation=self.tier, actor=self.actor)
        report = check(self.project)
        if report.errors:
            self.report(Rejected(tuple(report.findings)))
        else:
            self._restart()
        ids = tuple(extension.id for extension in self.project.extensions)
        self.report(Ready(ids, self.tier, _ms(began), {key: view.url for key, view in self.views.items()}))

    def close(self) -> None:
        """Stop serving, stop the extensions and close the host."""
        for view in self.views.values():
            view.close()
        self.views.clear()
        if self.host is not None:
            self.host.close()
            self.host = None
        if self._path_added:
            sys.path.remove(str(self.project.import_root))
            self._path_added = False

    def __enter__(self) -> DevSession:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Watching

    def watched(self) -> list[Path]:
        """The folders whose files `run` watches: the project's and the home's config folder."""
        return [self.project.folder, self.home.config_dir]

    def run(self, stop: threading.Event | None = None, *, exit_after: int | None = None) -> None:
        """Watch the project and apply each save, until ``stop`` is set, Ctrl-C, or ``exit_after`` saves
        that changed something (restarted, refreshed or rejected) were applied."""
        watchfiles = _watchfiles()
        ignored = watchfiles.DefaultFilter()
        applied = 0
        for changes in watchfiles.watch(
            *self.watched(),
            watch_filter=lambda change, path: ignored(change, path) and self.classify(Path(path)) is not None,
            stop_event=stop,
            step=STEP_MS,
            rust_timeout=500,
            yield_on_timeout=False,
        ):
            if self.apply(Path(path) for _, path in changes):
                applied += 1
                if exit_after is not None and applied >= exit_after:
                    return

    def classify(self, path: Path) -> Change | None:
        """What a save of ``path`` asks for, or None when it changes nothing that runs."""
        project = self.project
        if path == project.folder / "pyproject.toml":
            return "project"
        if path.parent == self.home.config_dir:
            ids = {canonical_id(extension.id) for extension in project.extensions}
            return "config" if path.suffix == ".toml" and canonical_id(path.stem) in ids else None
        for extension in project.extensions:
            if path == extension.manifest:
                return "manifest"
            view = self.views.get(extension.id)
            if view is not None and path.is_relative_to(view.root) and path.suffix != ".py":
                return "page" if path.exists() else None
            if path.is_relative_to(extension.package) or path == extension.package:
                # an editor's temporary file, made and removed within one save, is not code
                return "code" if path.suffix == ".py" or path.exists() else None
        return None

    def apply(self, paths: Iterable[Path]) -> bool:
        """Apply saved files: check, restart or refresh as `classify` says; False when none mattered."""
        changed = {path: self.classify(path) for path in paths}
        changes = {change for change in changed.values() if change is not None}
        if not changes:
            return False
        began = time.perf_counter()
        shown = tuple(sorted(_shown(path, self.project.folder) for path, change in changed.items() if change))
        if "project" in changes:
            try:
                self.project = DevProject.read(self.project.folder)
            except NotAnExtension as exc:
                self.report(
                    Rejected(
                        (Finding("metadata", "error", exc.message, "pyproject.toml", None, None, exc.hint),)
                    )
                )
                return True
            self._write_metadata()
        if changes & _RESTARTS:
            if changes & {"project", "manifest", "code"}:
                report = check(self.project)
                if report.errors:
                    self.report(Rejected(tuple(report.findings)))
                    return True
            started = self._restart()
            if started:
                self.report(Reloaded(started, _ms(began), shown))
        manifest = bool(changes & {"project", "manifest"})
        for extension, view in list(self.views.items()):
            try:
                pages = view.refresh(manifest=manifest)
            except SymphonyError as exc:
                self.report(Failed(extension, exc.message, exc.hint))
                continue
            self.report(Refreshed(extension, pages, _ms(began)))
        return True

    # Internals

    def _write_metadata(self) -> None:
        """The project's dist-info, as an editable install would have it, alone in the dev folder."""
        project = self.project
        if self.site.exists():
            shutil.rmtree(self.site)
        self.site.mkdir(parents=True)
        points: dict[str, dict[str, str]] = {}
        for extension in project.extensions:
            points.setdefault(extension.group, {})[extension.id] = extension.entry_point
        write_distribution(
            self.site, project.distribution, project.version, entry_points=points, requires=project.requires
        )

    def _restart(self) -> tuple[str, ...]:
        """Stop each extension of the project if it runs, find it again, and start it; returns those started."""
        host = self.host
        assert host is not None
        ids = [extension.id for extension in self.project.extensions]
        for ext_id in ids:
            try:
                host.unload(ext_id)  # new workers, or in this process its modules imported afresh
            except LifecycleError:
                pass  # it was not running
            except SymphonyError as exc:  # its deactivate failed: it is stopped all the same
                self._failed(ext_id, exc)
            host.state.lift_quarantine(canonical_id(ext_id), actor=self.actor)
        host.discover(rescan=True)
        started = []
        for ext_id in ids:
            asks = self.consent is not None and host.inspect(ext_id).manifest is not None
            if asks and not host.consent(ext_id).satisfied:
                assert self.consent is not None
                self.consent(host, ext_id)
                if not host.consent(ext_id).satisfied:
                    self.report(Unconsented(ext_id))
                    continue
            try:
                host.start(ext_id)
            except SymphonyError as exc:
                self._failed(ext_id, exc)
                continue
            started.append(ext_id)
            self._open_view(ext_id)
        return tuple(started)

    def _failed(self, ext_id: str, error: SymphonyError) -> None:
        where = located(error, self.project.folder)
        self.report(
            Failed(ext_id, error.message, error.hint, *(where if where is not None else (None, None)))
        )

    def _open_view(self, ext_id: str) -> None:
        """Serve what the kit shows for the extension, once (a motif's page)."""
        kind = KINDS[self.host.inspect(ext_id).kind] if self.host is not None else None
        if not self.serve or ext_id in self.views or kind is None or kind.dev is None:
            return
        try:
            factory = pkgutil.resolve_name(kind.dev)
        except (ImportError, AttributeError) as exc:
            self.report(
                Failed(
                    ext_id,
                    f"its page cannot be served: {kind.package} does not import ({exc})",
                    f"reinstall {kind.package}",
                )
            )
            return
        ports = sum(1 for extension in self.project.extensions if KINDS[extension.kind].dev is not None)
        try:
            self.views[ext_id] = factory(self.host, ext_id, port=self.port if ports == 1 else 0)
        except SymphonyError as exc:
            self._failed(ext_id, exc)
        except OSError as exc:
            self.report(
                Failed(
                    ext_id,
                    f"its page cannot be served on port {self.port}: {exc.strerror or exc}",
                    "pass another --port, or 0 for any free one",
                )
            )


def _watchfiles() -> ModuleType:
    """watchfiles, imported; `SymphonyError` with the install command when it is missing."""
    try:
        import watchfiles
    except ImportError:
        raise SymphonyError(
            "`symphony dev` watches files with watchfiles, which is not installed here",
            hint=f'install the core\'s dev extra: python -m pip install "symphony-sdk-core[dev]" (or "{WATCHFILES}")',
        ) from None
    return watchfiles


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000
