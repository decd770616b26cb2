"""Run the core for real: one virtual environment per session, wheels built by real build backends, and
the host driven from a separate process inside that environment.

No mocks: a test writes a distribution's source tree, builds it with hatchling or setuptools (through
``uv build``), installs it with ``uv pip``, then asks the ``symphony`` command or a host process what it
sees. The environment holds the core (editable, from this workspace) and ``symphony-motifs`` and
``symphony-operators`` installed with ``--no-deps``, so neither pywebview nor polars comes in. The test
extensions subclass ``symphony_core.Extension`` and are motifs unless a test says otherwise: the motifs
kit puts no front of its own in the host for an isolated extension (the host stands in for it with a
`RemoteExtension`), so what these tests check is the core's alone.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

WORKSPACE = Path(__file__).resolve().parents[3]
CORE = WORKSPACE / "packages" / "symphony-core"
OPERATORS = WORKSPACE / "packages" / "symphony-operators"
MOTIFS = WORKSPACE / "packages" / "symphony-motifs"
TARGETS = "symphony-motifs>=0.1,<0.2"
GROUP = "symphony.motifs"
OPERATORS_GROUP = "symphony.operators"
COMMAND_TIMEOUT = 120.0
REPLY_TIMEOUT = 60.0

# Runs inside the test environment: a host that answers one JSON request per line on stdin.
DRIVER = r"""
import json, logging, sys, time
import symphony_core
from symphony_core import Host, hookimpl

logging.basicConfig(level=logging.WARNING)  # as an embedding application would: Symphony itself logs to no handler

options = json.loads(sys.argv[1])


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def symphony_lifecycle_event(self, event):
        self.events.append([event.extension, event.old, event.new, event.reason])


class Broken:
    @hookimpl
    def symphony_lifecycle_event(self, event):
        raise RuntimeError("this observer is broken")


host = Host(options["home"], **options["host"])
recorder = Recorder()
host.hooks.register(recorder)
if options["broken_observer"]:
    host.hooks.register(Broken())  # pluggy calls the last registered first: it runs before the recorder


def jsonable(value):
    if hasattr(value, "as_json"):
        return value.as_json()
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, symphony_core.Extension):
        return type(value).__name__
    return value


published = []


def answer(op, args):
    if op == "subscribe":
        host.subscribe(args[0], lambda name, data: published.append([args[0], name, data]))
        return None
    if op == "published":
        return published
    if op == "modules":
        return sorted(name for name in sys.modules if name.split(".")[0] in args)
    if op == "events":
        return recorder.events
    if op == "loop_threads":
        import threading
        return sorted(t.name for t in threading.enumerate() if t.name.startswith("symphony-loop-"))
    if op == "audit":
        return [[r.event, r.detail] for r in host.state.audit_log(args[0])]
    if op == "rescan":
        return jsonable(host.discover(rescan=True))
    return jsonable(getattr(host, op)(*args))


print(json.dumps({"ok": True, "value": "ready"}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    started = time.monotonic()
    try:
        reply = {"ok": True, "value": answer(request["op"], request["args"])}
    except Exception as exc:
        reply = {"ok": False, "error": type(exc).__name__, "message": str(exc), "hint": getattr(exc, "hint", None)}
    reply["seconds"] = time.monotonic() - started
    print(json.dumps(reply), flush=True)
host.close()
"""


def _uv_binary() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            pytest.fail("these tests need uv: add `uv` to the test environment")
        return found
    return str(find_uv_bin())


def _clean_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UV_", "PIP_", "SYMPHONY_", "PYTEST_"))
        and key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX")
    }
    # This machine has a global pip config; uv ignores it, anything pip-based must too.
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", COLUMNS="200")
    # Edited extension code must be read afresh, never from a stale .pyc; the environment's own
    # dependencies are compiled once when installed, so processes still start fast.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def normalize(text: str) -> str:
    """Join the lines a terminal renderer wrapped, so messages can be searched for whole phrases."""
    return " ".join(text.split())


class HostError(AssertionError):
    """A request to the host process failed when the test expected it to succeed."""


@dataclass(frozen=True)
class Project:
    """The source tree of one distribution: its files under ``src/``, entry points and build backend."""

    name: str
    files: Mapping[str, str]
    entry_points: Mapping[str, str]
    version: str = "1.0.0"
    group: str = GROUP
    backend: str = "hatchling"
    package_data: bool = True
    recorded: bool = False
    """Build with Symphony's hatchling hook, which records a copy of the manifests in the wheel."""

    def write(self, root: Path) -> Path:
        """Write the tree into ``root/<name>-<version>`` and return that folder."""
        folder = root / f"{self.name}-{self.version}"
        for relative, text in self.files.items():
            path = folder / "src" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        (folder / "pyproject.toml").write_text(self._pyproject(), encoding="utf-8")
        return folder

    def _pyproject(self) -> str:
        entry_points = "".join(
            f"{json.dumps(name)} = {json.dumps(value)}\n" for name, value in self.entry_points.items()
        )
        head = (
            f'[project]\nname = "{self.name}"\nversion = "{self.version}"\nrequires-python = ">=3.10"\n\n'
            f'[project.entry-points."{self.group}"]\n{entry_points}\n'
        )
        packages = sorted({relative.split("/")[0] for relative in self.files})
        if self.backend == "hatchling":
            return (
                '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
                + head
                + f"[tool.hatch.build.targets.wheel]\npackages = {json.dumps([f'src/{p}' for p in packages])}\n"
                + ("\n[tool.hatch.build.targets.wheel.hooks.symphony]\n" if self.recorded else "")
            )
        assert self.backend == "setuptools", self.backend
        data = '[tool.setuptools.package-data]\n"*" = ["symphony.toml"]\n' if self.package_data else ""
        return (
            '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
            + head
            + '[tool.setuptools.packages.find]\nwhere = ["src"]\n\n'
            + data
        )


def manifest(ext_id: str, *, extra: str = "", **fields: str) -> str:
    """The text of a valid motif manifest for ``ext_id``; ``fields`` replace or add string fields."""
    values = {
        "id": ext_id,
        "kind": "motif",
        "name": f"Test extension {ext_id}",
        "summary": f"Exists to test the host with {ext_id}.",
        "targets": TARGETS,
        **fields,
    }
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()) + extra


def extension(
    ext_id: str, *, code: str, name: str | None = None, cls: str = "Ext", manifest_text: str | None = None
) -> Project:
    """A one-package distribution declaring motif ``ext_id``, whose ``__init__`` holds ``code``."""
    dist = name or ext_id.replace(".", "-").replace("_", "-")
    module = dist.replace("-", "_")
    return Project(
        name=dist,
        files={
            f"{module}/__init__.py": code,
            f"{module}/symphony.toml": manifest(ext_id) if manifest_text is None else manifest_text,
        },
        entry_points={ext_id: f"{module}:{cls}"},
    )


GREETER = """
from symphony_core import Extension


class Ext(Extension):
    def greet(self, name):
        return f"hello {name}, from {self.context.id}"
"""


def greeter(ext_id: str, **kwargs: Any) -> Project:
    """A healthy extension whose ``greet(name)`` answers with its own id."""
    return extension(ext_id, code=GREETER, **kwargs)


def by_id(infos: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Index ``list --json`` output (or ``host.discover()``) by extension id."""
    return {info["id"]: info for info in infos}


class HostProcess:
    """A ``symphony_core.Host`` living in its own process inside the test environment."""

    def __init__(self, python: Path, env: dict[str, str], home: Path, broken_observer: bool, **host: Any):
        options = {"home": str(home), "host": host, "broken_observer": broken_observer}
        self._stderr = home.parent / f"host-{time.monotonic_ns()}.stderr"
        home.parent.mkdir(parents=True, exist_ok=True)
        with self._stderr.open("wb") as stderr:
            self._process = subprocess.Popen(
                [str(python), "-c", DRIVER, json.dumps(options)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                bufsize=0,
            )
        self._buffer = b""
        assert self._reply()["value"] == "ready"

    def request(self, op: str, *args: Any) -> dict[str, Any]:
        """Send one request and return the raw reply (``ok``, ``value`` or ``error``/``message``/``hint``)."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, "args": list(args)}).encode() + b"\n")
        return self._reply()

    def __call__(self, op: str, *args: Any) -> Any:
        """Call a host method that must succeed and return its (JSON) value."""
        reply = self.request(op, *args)
        if not reply["ok"]:
            raise HostError(f"host.{op}{tuple(args)} raised {reply['error']}: {reply['message']}")
        return reply["value"]

    def refuses(self, op: str, *args: Any) -> dict[str, Any]:
        """Call a host method that must raise; return the error's type, message and hint."""
        reply = self.request(op, *args)
        assert not reply["ok"], f"host.{op}{tuple(args)} should have failed but returned {reply['value']!r}"
        return reply

    def info(self, ext_id: str) -> dict[str, Any]:
        """What ``host.inspect`` says about one extension."""
        value: dict[str, Any] = self("inspect", ext_id)
        return value

    @property
    def closed(self) -> bool:
        return self._process.returncode is not None

    @property
    def pid(self) -> int:
        return self._process.pid

    def descendants(self) -> list[int]:
        """Every process this host process started that still runs (its workers, theirs), from /proc."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                fields = stat.rpartition(")")[2].split()
                if fields[0] != "Z":
                    parents[int(entry.name)] = int(fields[1])
        found, frontier = [], [self.pid]
        while frontier:
            children = [pid for pid, parent in parents.items() if parent in frontier]
            found += children
            frontier = children
        return sorted(found)

    def close(self) -> str:
        """Let the host close down, check it exited cleanly, and return what it wrote on stderr."""
        assert self._process.stdin is not None
        if not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            code = self._process.wait(timeout=REPLY_TIMEOUT)
        finally:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            assert self._process.stdout is not None
            self._process.stdout.close()
        stderr = self._stderr.read_text(encoding="utf-8", errors="replace")
        assert code == 0, f"the host process exited with {code}:\n{stderr}"
        return stderr

    def _reply(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        deadline = time.monotonic() + REPLY_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise HostError(f"the host process did not answer within {REPLY_TIMEOUT:g} s")
                chunk = os.read(self._process.stdout.fileno(), 65536)
                if not chunk:
                    stderr = self._stderr.read_text(encoding="utf-8", errors="replace")
                    raise HostError(f"the host process died:\n{stderr}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply


@dataclass
class Venv:
    """The session's test environment and the tools to build, install and run things in it."""

    root: Path
    uv: str
    build_python: Path
    env: dict[str, str]
    site_packages: Path = field(init=False)

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run(
        self, *args: str | Path, check: bool = True, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with the session's clean environment (and ``env`` over it) and return it, stdout
        and stderr captured."""
        result = subprocess.run(
            [str(arg) for arg in args],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}")
        return result

    def symphony(
        self, home: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``symphony`` command of the environment against ``home`` (``env`` over the session's)."""
        return self.run(self.root / "bin" / "symphony", "--home", home, *args, check=False, env=env)

    def symphony_json(self, home: Path, *args: str) -> Any:
        """Run a ``symphony ... --json`` command that must succeed and return its parsed output."""
        result = self.symphony(home, *args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def build(self, project: Project, root: Path) -> Path:
        """Build ``project`` into a wheel with its own build backend and return the wheel's path."""
        folder = project.write(root)
        out = folder / "dist"
        self.run(
            self.uv,
            "build",
            "--wheel",
            "--no-build-isolation",
            "--python",
            self.build_python,
            "--out-dir",
            out,
            folder,
        )
        (wheel,) = out.glob("*.whl")
        return wheel

    def install(self, root: Path, *projects: Project, editable: bool = False) -> list[Path]:
        """Build and install the projects in one go; with ``editable``, install their source trees instead."""
        if editable:
            folders = [project.write(root) for project in projects]
            self.run(
                self.uv,
                "pip",
                "install",
                "--python",
                self.python,
                *[arg for f in folders for arg in ("-e", f)],
            )
            return folders
        with ThreadPoolExecutor(max_workers=4) as pool:
            wheels = list(pool.map(lambda project: self.build(project, root), projects))
        self.run(self.uv, "pip", "install", "--python", self.python, *wheels)
        return wheels

    def uninstall(self, *names: str) -> None:
        self.run(self.uv, "pip", "uninstall", "--python", self.python, *names)

    def install_kits(self) -> None:
        """Install the workspace's motifs and operators kits without their dependencies (again, after a
        test put a stand-in in their place)."""
        self.run(
            self.uv, "pip", "install", "--quiet", "--python", self.python, "--no-deps", OPERATORS, MOTIFS
        )

    def installed(self) -> set[str]:
        """The names of the distributions installed in the environment."""
        result = self.run(self.uv, "pip", "list", "--python", self.python, "--format", "json")
        return {item["name"] for item in json.loads(result.stdout)}

    def host(self, home: Path, *, broken_observer: bool = False, **options: Any) -> HostProcess:
        """Start a host process on ``home``; ``options`` go to ``Host(home, **options)``."""
        return HostProcess(self.python, self.env, home, broken_observer, **options)


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A real virtual environment with the core, and ``symphony-motifs`` and ``symphony-operators``
    without their dependencies."""
    uv = _uv_binary()
    env = _clean_env()
    root = tmp_path_factory.mktemp("venvs")
    build = root / "build"
    environment = Venv(root / "test", uv, build / "bin" / "python", env)
    environment.run(uv, "venv", "--quiet", "--python", sys.executable, build)
    # The core too: its hatchling hook (the `hatch` entry point) is what `Project(recorded=True)` builds with.
    environment.run(
        uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        environment.build_python,
        "hatchling",
        "editables",  # what hatchling's editable builds of a package folder use
        "setuptools>=64",
        "-e",
        CORE,
    )
    environment.run(uv, "venv", "--quiet", "--python", sys.executable, environment.root)
    environment.install_kits()
    environment.run(
        uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", environment.python, "-e", CORE
    )
    purelib = environment.run(
        environment.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
    )
    environment.site_packages = Path(purelib.stdout.strip())
    installed = environment.installed()
    assert "polars" not in installed, "symphony-operators must come in without its dependencies"
    assert "pywebview" not in installed, "symphony-motifs must come in without its dependencies"
    return environment


@dataclass
class Installer:
    """Installs distributions for one test and removes them afterwards, keeping the environment clean."""

    venv: Venv
    root: Path
    names: list[str] = field(default_factory=list)

    def __call__(self, *projects: Project, editable: bool = False) -> list[Path]:
        self.names += [project.name for project in projects if project.name not in self.names]
        return self.venv.install(self.root, *projects, editable=editable)

    def uninstall(self, *names: str) -> None:
        self.venv.uninstall(*names)
        self.names = [name for name in self.names if name not in names]

    def cleanup(self) -> None:
        if self.names:
            self.venv.uninstall(*self.names)
            self.names = []


@pytest.fixture
def install(venv: Venv, tmp_path: Path) -> Iterator[Installer]:
    """Build and install distributions into the session's environment for this test only."""
    installer = Installer(venv, tmp_path / "projects")
    yield installer
    installer.cleanup()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh Symphony home (state database and discovery index) for this test."""
    return tmp_path / "home"


@pytest.fixture
def hosts(venv: Venv) -> Iterator[HostStarter]:
    """Start host processes; each is closed (and must exit 0) at the end of the test."""
    starter = HostStarter(venv)
    yield starter
    starter.close_all()


@dataclass
class HostStarter:
    venv: Venv
    started: list[HostProcess] = field(default_factory=list)

    def __call__(self, home: Path, *, broken_observer: bool = False, **options: Any) -> HostProcess:
        process = self.venv.host(home, broken_observer=broken_observer, **options)
        self.started.append(process)
        return process

    def close_all(self) -> None:
        for process in self.started:
            if not process.closed:
                process.close()


class Helpers:
    """Builders for test distributions, reachable from test modules as the ``make`` fixture."""

    Project = Project
    extension = staticmethod(extension)
    greeter = staticmethod(greeter)
    manifest = staticmethod(manifest)
    normalize = staticmethod(normalize)
    TARGETS = TARGETS
    GROUP = GROUP
    OPERATORS_GROUP = OPERATORS_GROUP
    GREETER = GREETER
    by_id = staticmethod(by_id)


@pytest.fixture(scope="session")
def make() -> type[Helpers]:
    """Helpers to describe test distributions (test modules cannot import conftest in importlib mode)."""
    return Helpers
