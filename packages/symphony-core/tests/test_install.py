"""`symphony install / upgrade / uninstall`: extensions in environments of their own.

The wheel checks run on wheel files written here (a zip with a correct RECORD). Everything else runs for
real: wheels built by hatchling, published to a pypiserver on 127.0.0.1 (which sends what it does not
hold, the kits' and the core's dependencies, on to PyPI), installed by the ``symphony`` command with uv,
and run by a host process in isolated workers.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from symphony_core import write_distribution
from symphony_core._runtime._install import DEFAULT_INDEX, InstallError, _index_files, read_wheel

WORKSPACE = Path(__file__).resolve().parents[3]
CORE = WORKSPACE / "packages" / "symphony-core"
MOTIFS = WORKSPACE / "packages" / "symphony-motifs"
Venv = Any  # the session's test environment (conftest's `venv` fixture)
EntryPoints = dict[str, dict[str, str]]


def manifest(ext_id: str, *, extra: str = "") -> str:
    """A valid motif manifest for ``ext_id``."""
    return (
        f'id = "{ext_id}"\nkind = "motif"\nname = "Test extension {ext_id}"\n'
        f'summary = "Exists to test installing {ext_id}."\ntargets = "symphony-motifs>=0.1,<0.2"\n{extra}'
    )


# Wheels written by hand, read without running anything


def write_wheel(
    folder: Path, name: str, version: str, files: dict[str, str], points: EntryPoints | None = None
) -> Path:
    """A wheel with ``files``, entry points ``points`` and a RECORD that lists every file with its hash."""
    return write_distribution(folder, name, version, files=files, entry_points=points, wheel=True)


def motif_files(module: str, ext_id: str) -> dict[str, str]:
    return {
        f"{module}/__init__.py": "from symphony_core import Extension\n\nclass Ext(Extension):\n    pass\n",
        f"{module}/symphony.toml": manifest(ext_id),
    }


def points(ext_id: str, module: str) -> EntryPoints:
    return {"symphony.motifs": {ext_id: f"{module}:Ext"}}


def test_a_valid_wheel_is_read_with_its_manifest_and_nothing_is_imported(tmp_path: Path) -> None:
    wheel = write_wheel(
        tmp_path,
        "acme-clean",
        "1.0",
        motif_files("acme_clean", "acme.clean"),
        points("acme.clean", "acme_clean"),
    )
    found = read_wheel(wheel)
    assert found.distribution == "acme-clean"
    assert [extension.id for extension in found.extensions] == ["acme.clean"]
    assert found.findings == ()
    assert found.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert "acme_clean" not in sys.modules


@pytest.mark.parametrize(
    ("extra", "why", "allowable"),
    [
        ({"acme_evil.pth": "import os\n"}, "a .pth file", True),
        ({"requests/__init__.py": ""}, "outside the extension's own packages", True),
        ({"acme_evil-1.0.data/scripts/run": "#!/bin/sh\n"}, "'scripts' folder", True),
        ({"symphony_core/_security/_sandbox/_worker.py": ""}, "a package of Symphony's own", False),
    ],
    ids=["pth", "other-package", "scripts", "symphony-core"],
)
def test_files_outside_the_extensions_packages_are_named_with_why(
    tmp_path: Path, extra: dict[str, str], why: str, allowable: bool
) -> None:
    files = {**motif_files("acme_evil", "acme.evil"), **extra}
    found = read_wheel(write_wheel(tmp_path, "acme-evil", "1.0", files, points("acme.evil", "acme_evil")))
    (finding,) = found.findings
    assert finding.file == next(iter(extra))
    assert why in finding.why
    assert finding.allowable is allowable


def test_a_wheel_whose_file_does_not_match_its_record_is_refused(tmp_path: Path) -> None:
    wheel = write_wheel(
        tmp_path, "acme-bent", "1.0", motif_files("acme_bent", "acme.bent"), points("acme.bent", "acme_bent")
    )
    with zipfile.ZipFile(wheel) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    contents["acme_bent/__init__.py"] += b"import os; os.system('true')\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    with pytest.raises(InstallError, match=r"acme_bent/__init__.py does not match its RECORD hash"):
        read_wheel(wheel)


def test_a_truncated_wheel_the_squatted_name_and_a_library_are_refused(tmp_path: Path) -> None:
    wheel = write_wheel(
        tmp_path, "acme-cut", "1.0", motif_files("acme_cut", "acme.cut"), points("acme.cut", "acme_cut")
    )
    wheel.write_bytes(wheel.read_bytes()[:200])
    with pytest.raises(InstallError, match="not a valid wheel: it is not a readable wheel"):
        read_wheel(wheel)
    squatted = write_wheel(tmp_path, "symphony-core", "9.0", motif_files("x", "x.y"), points("x.y", "x"))
    with pytest.raises(InstallError, match="the name belongs to an unrelated project"):
        read_wheel(squatted)
    library = write_wheel(tmp_path, "acme-lib", "1.0", {"acme_lib/__init__.py": ""})
    with pytest.raises(InstallError, match="is not a Symphony extension"):
        read_wheel(library)


# A real index, real wheels, real environments


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError):
            assert process is None or process.poll() is None, "the index exited"
            assert time.monotonic() < deadline, f"{url} did not answer within 30 s"
            time.sleep(0.2)


@dataclass(frozen=True)
class Dist:
    """The source tree of a distribution with dependencies, built by hatchling (``venv.build``)."""

    name: str
    version: str
    files: dict[str, str]
    entry_points: dict[str, str]
    dependencies: tuple[str, ...] = ()

    def write(self, root: Path) -> Path:
        folder = root / f"{self.name}-{self.version}"
        for relative, text in self.files.items():
            path = folder / "src" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.lstrip(), encoding="utf-8")
        points = "".join(
            f"{json.dumps(name)} = {json.dumps(value)}\n" for name, value in self.entry_points.items()
        )
        packages = sorted({f"src/{relative.split('/')[0]}" for relative in self.files})
        (folder / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
            f'[project]\nname = "{self.name}"\nversion = "{self.version}"\nrequires-python = ">=3.10"\n'
            f"dependencies = {json.dumps(list(self.dependencies))}\n\n"
            + (f'[project.entry-points."symphony.motifs"]\n{points}\n' if points else "")
            + f"[tool.hatch.build.targets.wheel]\npackages = {json.dumps(packages)}\n",
            encoding="utf-8",
        )
        return folder


WHICH = """
import sys

import dep_a
from symphony_core import Extension


class Ext(Extension):
    def which(self):
        return {"dep_a": dep_a.VERSION, "file": dep_a.__file__, "path": sys.path}
"""


def ext(name: str, ext_id: str, dep: str, version: str = "1.0.0", permissions: str = "") -> Dist:
    module = name.replace("-", "_")
    return Dist(
        name=name,
        version=version,
        files={
            f"{module}/__init__.py": WHICH,
            f"{module}/symphony.toml": manifest(ext_id, extra=permissions),
        },
        entry_points={ext_id: f"{module}:Ext"},
        dependencies=("symphony-motifs>=0.1,<0.2", dep),
    )


def dep_a(version: str) -> Dist:
    return Dist(
        name="dep-a",
        version=version,
        files={"dep_a/__init__.py": f"VERSION = {version!r}\n"},
        entry_points={},
    )


READ_DATA = '\n[[permissions]]\ntype = "fs.read"\npaths = ["{data}/*"]\nreason = "Reads its own files."\n'
NET = (
    '\n[[permissions]]\ntype = "net.connect"\nhosts = ["api.example.com:443"]\nreason = "Asks the weather."\n'
)


@dataclass
class Index:
    url: str
    storage: Path
    built: Path
    venv: Venv

    def publish(self, *projects: Dist) -> list[Path]:
        wheels = [self.venv.build(project, self.built) for project in projects]
        for wheel in wheels:
            shutil.copy2(wheel, self.storage / wheel.name)
        return wheels


@pytest.fixture(scope="module")
def index(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """pypiserver on loopback holding the workspace's core and motifs kit; what it lacks comes from PyPI."""
    storage = tmp_path_factory.mktemp("index")
    built = tmp_path_factory.mktemp("built")
    # pywebview (the motifs kit's) needs proxy-tools, which PyPI has as an sdist only: an index that serves
    # hosts installing wheels only holds a wheel built from it, as this one does.
    (sdist,) = [
        file for file in _index_files(DEFAULT_INDEX, "proxy-tools") if file.filename.endswith(".tar.gz")
    ]
    with urllib.request.urlopen(sdist.url, timeout=60) as response:
        (built / sdist.filename).write_bytes(response.read())
    venv.run(
        venv.uv,
        "build",
        "--wheel",
        "--python",
        venv.build_python,
        "--out-dir",
        storage,
        built / sdist.filename,
    )
    for package in (CORE, MOTIFS):
        venv.run(
            venv.uv,
            "build",
            "--wheel",
            "--no-build-isolation",
            "--python",
            venv.build_python,
            "--out-dir",
            storage,
            package,
        )
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pypiserver",
            "run",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "--backend",
            "simple-dir",
            storage,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/simple/"
        wait_for(url, server)
        yield Index(url, storage, built, venv)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def managed_home(tmp_path: Path, index: Index) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "install.toml").write_text(f'index = "{index.url}"\n', encoding="utf-8")
    return home


def with_uv(venv: Venv, home: Path) -> dict[str, str]:
    """``PATH`` with uv on it (the host finds uv there: the test environment does not install the ``uv`` package)."""
    folder = home.parent / "uv-bin"
    if not folder.exists():
        folder.mkdir()
        (folder / "uv").symlink_to(venv.uv)
    return {"PATH": f"{folder}:{venv.env['PATH']}"}


def symphony_json(venv: Venv, home: Path, *args: str) -> Any:
    result = venv.symphony(home, *args, "--json", env=with_uv(venv, home))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(venv: Venv, home: Path, *args: str) -> str:
    result = venv.symphony(home, *args, env=with_uv(venv, home))
    assert result.returncode == 1, result.stdout + result.stderr
    return " ".join(result.stderr.split())


def environments(home: Path, distribution: str) -> list[Path]:
    folder = home / "envs" / distribution
    return (
        sorted(path for path in folder.iterdir() if not path.name.startswith(".")) if folder.exists() else []
    )


@pytest.fixture(scope="module")
def published(index: Index) -> Index:
    index.publish(
        dep_a("1.0"),
        dep_a("2.0"),
        ext("acme-one", "acme.one", "dep-a==1.0", permissions=READ_DATA),
        ext("acme-two", "acme.two", "dep-a==2.0"),
    )
    return index


@pytest.mark.slow
def test_two_extensions_with_conflicting_pins_install_and_run_side_by_side(
    venv: Venv, published: Index, managed_home: Path
) -> None:
    one = symphony_json(venv, managed_home, "install", "acme-one", "--yes")
    two = symphony_json(venv, managed_home, "install", "acme-two==1.0.0", "--yes")
    assert one["action"] == "installed"
    assert two["action"] == "installed"
    assert one["lock"]["dep-a"] == "1.0"
    assert two["lock"]["dep-a"] == "2.0"
    assert one["lock"]["symphony-sdk-core"] == two["lock"]["symphony-sdk-core"]
    wheel = published.storage / "acme_one-1.0.0-py3-none-any.whl"
    assert one["wheel_sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert one["granted"] == {"acme.one": ["fs.read {data}/*"]}
    assert Path(one["environment"]).parent == managed_home / "envs" / "acme-one"

    listed = {info["id"]: info for info in symphony_json(venv, managed_home, "list")}
    assert listed["acme.one"]["environment"] == one["environment"]
    assert listed["acme.two"]["environment"] == two["environment"]
    assert listed["acme.one"]["state"] == "validated"
    assert "own env" in venv.symphony(managed_home, "list").stdout

    host = venv.host(managed_home, isolation="auto")
    try:
        host("start", "acme.one")
        host("start", "acme.two")
        assert host("tier", "acme.one") == "isolated"
        first, second = host("call", "acme.one", "which"), host("call", "acme.two", "which")
        assert (first["dep_a"], second["dep_a"]) == ("1.0", "2.0")
        assert first["file"].startswith(one["environment"])
        assert second["file"].startswith(two["environment"])
        # nothing of the host's own environment is on a managed worker's path
        assert not [folder for folder in first["path"] if folder.startswith(str(venv.root))]
        assert host("modules", "acme_one", "dep_a") == []  # the host imported neither
    finally:
        host.close()

    guarded = venv.host(managed_home, isolation="guard")
    try:
        reply = guarded.refuses("start", "acme.one")
        assert reply["error"] == "CompatibilityError"
        assert "installed in an environment of its own" in reply["message"]
    finally:
        guarded.close()

    audited = venv.host(managed_home)
    try:
        events = [event for event, _ in audited("audit", "acme.one")]
    finally:
        audited.close()
    assert "installed" in events
    assert "granted" in events


@pytest.mark.slow
def test_upgrade_shows_what_is_new_and_uninstall_removes_everything(
    venv: Venv, published: Index, managed_home: Path
) -> None:
    symphony_json(venv, managed_home, "install", "acme-one==1.0.0", "--yes")
    (old,) = environments(managed_home, "acme-one")
    published.publish(ext("acme-one", "acme.one", "dep-a==2.0", version="1.1.0", permissions=NET))

    asked = venv.symphony(
        managed_home, "upgrade", "acme.one", env=with_uv(venv, managed_home)
    )  # no terminal, no --yes: nothing changes
    assert asked.returncode == 1
    assert "NEW: acme.one net.connect api.example.com:443" in asked.stdout
    assert "dropped: acme.one fs.read {data}/*" in asked.stdout
    assert "pass --yes" in asked.stderr
    assert environments(managed_home, "acme-one") == [old]

    upgraded = symphony_json(venv, managed_home, "upgrade", "acme.one", "--yes")
    assert upgraded["action"] == "upgraded"
    assert upgraded["granted"] == {}, "--yes alone never grants a flagged permission (network here)"
    assert (upgraded["previous_version"], upgraded["version"]) == ("1.0.0", "1.1.0")
    assert upgraded["changes"] == [
        {
            "extension": "acme.one",
            "new": ["net.connect api.example.com:443"],
            "widened": [],
            "dropped": ["fs.read {data}/*"],
        }
    ]
    assert environments(managed_home, "acme-one") == [Path(upgraded["environment"])]
    assert not old.exists()
    assert symphony_json(venv, managed_home, "upgrade", "acme.one", "--yes")["action"] == "unchanged"

    data = managed_home / "extensions" / "acme.one" / "data"
    data.mkdir(parents=True)
    runner = managed_home / "extensions" / "acme.one~runner" / "cache"  # a helper's, e.g. a fused pipeline's
    runner.mkdir(parents=True)
    neighbour = managed_home / "extensions" / "acme.one-two" / "data"
    neighbour.mkdir(parents=True)
    gone = symphony_json(venv, managed_home, "uninstall", "acme.one", "--purge", "--yes")
    assert gone["action"] == "uninstalled"
    assert gone["purged"]
    assert environments(managed_home, "acme-one") == []
    assert not data.exists()
    assert not runner.parent.exists()
    assert neighbour.exists(), "only the uninstalled extension's own folders go"
    assert "acme.one" not in {info["id"] for info in symphony_json(venv, managed_home, "list")}
    host = venv.host(managed_home)
    try:
        assert [event for event, _ in host("audit", "acme.one")][-2:] == ["uninstalled", "revoked"]
    finally:
        host.close()
    check = "import sys; from symphony_core._store._state import HostState; print(len(HostState(sys.argv[1]).grants('acme.one')))"
    assert venv.run(venv.python, "-c", check, managed_home / "state.sqlite").stdout.strip() == "0"


@pytest.mark.slow
def test_bad_input_gives_one_clear_error_and_leaves_the_installed_version_working(
    venv: Venv, published: Index, managed_home: Path, tmp_path: Path
) -> None:
    symphony_json(venv, managed_home, "install", "acme-two", "--yes")
    (kept,) = environments(managed_home, "acme-two")

    # an sdist-only release: refused before anything is downloaded or built
    (published.storage / "acme_sdist-1.0.tar.gz").write_bytes(b"not looked at")
    assert "only as a source distribution (sdist)" in refused(
        venv, managed_home, "install", "acme-sdist", "--yes"
    )
    # a name the index does not have, a version that does not exist
    unknown = "symphony-test-no-such-extension-8d1f"
    assert f"{unknown} is not on the package index" in refused(
        venv, managed_home, "install", unknown, "--yes"
    )
    assert "has no release ==9.9 on" in refused(venv, managed_home, "install", "acme-two==9.9", "--yes")
    # a wheel with a .pth file
    pth = write_wheel(
        tmp_path,
        "acme-pth",
        "1.0",
        {**motif_files("acme_pth", "acme.pth"), "acme_pth.pth": "import os\n"},
        points("acme.pth", "acme_pth"),
    )
    message = refused(venv, managed_home, "install", "--from", str(pth), "--yes")
    assert "carries acme_pth.pth: a .pth file" in message
    assert "--allow-outside-files" in message
    # a manifest that does not validate, installed with --yes: uv begins the environment while the
    # manifests are checked (the install is decided), and the refusal removes what it began
    broken = write_wheel(
        tmp_path,
        "acme-broken",
        "1.0",
        {
            **motif_files("acme_broken", "acme.broken"),
            "acme_broken/symphony.toml": manifest("acme.broken", extra='colour = "blue"\n'),
        },
        points("acme.broken", "acme_broken"),
    )
    message = refused(venv, managed_home, "install", "--from", str(broken), "--yes")
    assert "acme_broken/symphony.toml" in message
    assert "colour" in message
    assert environments(managed_home, "acme-broken") == []
    # a local wheel named by a path relative to where the command runs
    relative = write_distribution(
        tmp_path,
        "acme-rel",
        "1.0",
        files=motif_files("acme_rel", "acme.rel"),
        entry_points=points("acme.rel", "acme_rel"),
        requires=("symphony-motifs>=0.1,<0.2",),
        wheel=True,
    )
    done = symphony_json(venv, managed_home, "install", "--from", os.path.relpath(relative), "--yes")
    assert done["action"] == "installed"
    assert len(environments(managed_home, "acme-rel")) == 1
    # the squatted name, even from a local wheel
    assert "unrelated project" in refused(venv, managed_home, "install", "symphony-core", "--yes")

    # an index that is down: the upgrade fails, the installed version is untouched
    down = f"http://127.0.0.1:{free_port()}/simple/"
    (managed_home / "install.toml").write_text(f'index = "{down}"\n', encoding="utf-8")
    assert f"cannot reach the package index {down}" in refused(
        venv, managed_home, "upgrade", "acme.two", "--yes"
    )

    # an index whose published hash does not match the file it serves
    static = tmp_path / "static"
    wheel = published.storage / "acme_two-1.0.0-py3-none-any.whl"
    page = static / "simple" / "acme-two"
    page.mkdir(parents=True)
    shutil.copy2(wheel, static / wheel.name)
    bad = "0" * 64
    (page / "index.html").write_text(
        f'<a href="../../{wheel.name}#sha256={bad}">acme_two-1.1.0-py3-none-any.whl</a>\n'
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _files(static))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (managed_home / "install.toml").write_text(
            f'index = "http://127.0.0.1:{server.server_address[1]}/simple/"\n', encoding="utf-8"
        )
        message = refused(venv, managed_home, "upgrade", "acme.two", "--yes")
        assert "does not match the hash the index published" in message
        assert bad in message
    finally:
        server.shutdown()
        server.server_close()

    assert environments(managed_home, "acme-two") == [kept]
    assert [
        path.name for path in (managed_home / "envs").iterdir() if path.name.startswith(".download")
    ] == []
    assert not (managed_home / "envs" / "acme-sdist").exists()
    host = venv.host(managed_home)
    try:
        host("start", "acme.two")
        assert host("call", "acme.two", "which")["dep_a"] == "2.0"
    finally:
        host.close()


def _files(root: Path) -> Any:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


# Bad input met in the middle: a wheel that does not fit, a download cut short, an index that stalls, a
# full disk, Ctrl-C. Each is an upgrade of acme-two 1.0.0 to 1.1.0, which must leave 1.0.0 as it was.


def acme_two_1_1(folder: Path, *, requires: tuple[str, ...] = (), requires_python: str | None = None) -> Path:
    """acme-two 1.1.0, asking for the network, as a wheel written here (tagged py3-none-any)."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_distribution(
        folder,
        "acme-two",
        "1.1.0",
        files={"acme_two/__init__.py": WHICH, "acme_two/symphony.toml": manifest("acme.two", extra=NET)},
        entry_points=points("acme.two", "acme_two"),
        requires=("symphony-motifs>=0.1,<0.2", "dep-a==2.0", *requires),
        requires_python=requires_python,
        wheel=True,
    )


class Gate(http.server.ThreadingHTTPServer):
    """A package index in front of the test's pypiserver that serves its own pages and files, cuts some
    short, and stalls on some, as a test tells it."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _GateHandler)
        self.upstream = upstream.rstrip("/").removesuffix("/simple")
        self.files: dict[str, bytes] = {}
        """Path: what is served here instead of by the pypiserver."""
        self.cut: set[str] = set()
        """Paths sent with their full Content-Length, then half their body, then the connection closed."""
        self.stalled: set[str] = set()
        """Paths that never answer (a file of ``files`` gets its headers, then nothing)."""
        self.reached = threading.Event()
        self.released = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/simple/"

    def page(self, project: str, *links: str) -> None:
        self.files[f"/simple/{project}/"] = "".join(f"{link}\n" for link in links).encode()

    def wheel(self, wheel: Path, *, listed: str = "") -> str:
        """Serve ``wheel`` under /files/ and return its link for a page (``listed``: more attributes)."""
        self.files[f"/files/{wheel.name}"] = wheel.read_bytes()
        return f'<a href="/files/{wheel.name}"{listed}>{wheel.name}</a>'

    def close(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class _GateHandler(http.server.BaseHTTPRequestHandler):
    server: Gate

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        gate, path = self.server, self.path.partition("?")[0]
        body = gate.files.get(path)
        if path in gate.stalled:
            if body is not None:
                self._head(len(body), "application/octet-stream")
                self.wfile.flush()
            gate.reached.set()
            gate.released.wait(120)
            self.close_connection = True
            return
        if body is not None:
            self._head(len(body), "text/html" if path.endswith("/") else "application/octet-stream")
            if send_body:
                self.wfile.write(body[: len(body) // 2] if path in gate.cut else body)
            self.close_connection = path in gate.cut
            return
        request = urllib.request.Request(gate.upstream + self.path, method=self.command)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, kind, body = (
                    response.status,
                    response.headers.get("Content-Type", ""),
                    response.read(),
                )
                length = response.headers.get("Content-Length", str(len(body)))
        except urllib.error.HTTPError as exc:
            status, kind, body = exc.code, exc.headers.get("Content-Type", ""), exc.read()
            length = str(len(body))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", length)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _head(self, length: int, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gate(published: Index) -> Iterator[Gate]:
    served = Gate(published.url)
    try:
        yield served
    finally:
        served.close()


def use_index(home: Path, url: str, *, timeout: float | None = None) -> None:
    setting = "" if timeout is None else f"timeout = {timeout}\n"
    (home / "install.toml").write_text(f'index = "{url}"\n{setting}', encoding="utf-8")


def left_as_it_was(venv: Venv, home: Path, kept: Path) -> None:
    """No half-made environment, no download, no grant; acme-two 1.0.0 still the one listed."""
    assert environments(home, "acme-two") == [kept]
    assert [path.name for path in (home / "envs").iterdir() if path.name.startswith(".download")] == []
    assert list((home / "envs" / "acme-two").glob(".*.constraints.txt")) == []
    check = "import sys; from symphony_core._store._state import HostState; print(len(HostState(sys.argv[1]).grants('acme.two')))"
    assert venv.run(venv.python, "-c", check, home / "state.sqlite").stdout.strip() == "0"
    listed = {info["id"]: info for info in symphony_json(venv, home, "list")}
    assert listed["acme.two"]["environment"] == str(kept)


def still_works(venv: Venv, home: Path) -> None:
    host = venv.host(home)
    try:
        host("start", "acme.two")
        assert host("call", "acme.two", "which")["dep_a"] == "2.0"
    finally:
        host.close()


@pytest.mark.slow
def test_a_wheel_for_another_python_or_platform_is_refused_naming_what_exists(
    venv: Venv, published: Index, managed_home: Path, gate: Gate, tmp_path: Path
) -> None:
    symphony_json(venv, managed_home, "install", "acme-two==1.0.0", "--yes")
    (kept,) = environments(managed_home, "acme-two")
    python = ".".join(map(str, sys.version_info[:3]))

    # on the index: the newest release has a Windows CPython 3.9 wheel and one for Python 2 only
    built = acme_two_1_1(tmp_path / "py2", requires_python="<3.0")
    windows = built.with_name("acme_two-1.1.0-cp39-cp39-win_amd64.whl")
    shutil.copy2(acme_two_1_1(tmp_path / "win"), windows)
    gate.page("acme-two", gate.wheel(windows), gate.wheel(built, listed=' data-requires-python="&lt;3.0"'))
    use_index(managed_home, gate.url)
    message = refused(venv, managed_home, "upgrade", "acme.two", "--yes")
    assert f"acme-two 1.1.0 has no wheel for this Python ({python}) and platform ({sys.platform})" in message
    assert f"it has: {windows.name}, {built.name}" in message
    assert "install a release built for this Python and platform" in message
    left_as_it_was(venv, managed_home, kept)

    # the same wheels from a file: the tags of its name, the Requires-Python of its METADATA
    message = refused(venv, managed_home, "upgrade", "acme.two", "--from", str(windows), "--yes")
    assert f"{windows.name} is built for cp39-cp39-win_amd64, not for this Python ({python})" in message
    message = refused(venv, managed_home, "upgrade", "acme.two", "--from", str(built), "--yes")
    assert f"{built.name} requires Python <3.0, and this host runs Python {python}" in message
    left_as_it_was(venv, managed_home, kept)

    # a name whose only wheel is for another platform: nothing is made for it
    shutil.copy2(windows, published.storage / "acme_plat-1.0.0-cp39-cp39-win_amd64.whl")
    use_index(managed_home, published.url)
    assert "acme-plat 1.0.0 has no wheel for this Python" in refused(
        venv, managed_home, "install", "acme-plat", "--yes"
    )
    assert environments(managed_home, "acme-plat") == []
    still_works(venv, managed_home)


@pytest.mark.slow
def test_a_download_cut_short_or_an_index_that_stalls_is_one_clear_error(
    venv: Venv, published: Index, managed_home: Path, gate: Gate, tmp_path: Path
) -> None:
    symphony_json(venv, managed_home, "install", "acme-two==1.0.0", "--yes")
    (kept,) = environments(managed_home, "acme-two")
    newer = acme_two_1_1(tmp_path / "newer")
    link = gate.wheel(newer)
    gate.page("acme-two", link)

    # the connection drops half-way through the wheel
    gate.cut = {f"/files/{newer.name}"}
    use_index(managed_home, gate.url)
    message = refused(venv, managed_home, "upgrade", "acme.two", "--yes")
    size = newer.stat().st_size
    assert (
        f"the download of {newer.name} from {gate.url} was cut short ({size // 2} of {size} bytes)" in message
    )
    assert "try again" in message
    left_as_it_was(venv, managed_home, kept)

    # the index serves a truncated file as if whole, and publishes no hash to catch it
    gate.cut = set()
    gate.files[f"/files/{newer.name}"] = newer.read_bytes()[: size // 2]
    message = refused(venv, managed_home, "upgrade", "acme.two", "--yes")
    assert f"{newer.name} is not a valid wheel: it is not a readable wheel, corrupt or cut short" in message
    assert "download it again" in message
    left_as_it_was(venv, managed_home, kept)

    # the index stalls: on its page, then half-way (headers sent, no body), within a short timeout
    gate.files[f"/files/{newer.name}"] = newer.read_bytes()
    use_index(managed_home, gate.url, timeout=1)
    for stalled in ("/simple/acme-two/", f"/files/{newer.name}"):
        gate.stalled = {stalled}
        started = time.monotonic()
        message = refused(venv, managed_home, "upgrade", "acme.two", "--yes")
        assert f"the package index {gate.url} did not answer within 1 s; nothing was installed" in message
        assert "raise `timeout` (seconds) in install.toml" in message
        assert time.monotonic() - started < 20
        left_as_it_was(venv, managed_home, kept)

    # the index stalls on a dependency, while uv installs: uv's timeout is the same setting
    with_b = acme_two_1_1(tmp_path / "with-b", requires=("dep-b",))
    gate.page("acme-two", gate.wheel(with_b))
    gate.stalled = {"/simple/dep-b/"}
    gate.reached.clear()
    use_index(managed_home, gate.url, timeout=2)
    message = refused(venv, managed_home, "upgrade", "acme.two", "--yes")
    assert gate.reached.is_set()
    assert (
        "the package index did not answer uv within 2 s while it installed the dependencies of acme-two 1.1.0"
        in message
    )
    assert "raise `timeout` (seconds) in install.toml" in message
    left_as_it_was(venv, managed_home, kept)
    still_works(venv, managed_home)


@pytest.mark.slow
def test_ctrl_c_while_uv_installs_leaves_the_installed_version_as_it_was(
    venv: Venv, published: Index, managed_home: Path, gate: Gate, tmp_path: Path
) -> None:
    symphony_json(venv, managed_home, "install", "acme-two==1.0.0", "--yes")
    (kept,) = environments(managed_home, "acme-two")
    with_b = acme_two_1_1(tmp_path / "with-b", requires=("dep-b",))
    gate.page("acme-two", gate.wheel(with_b))
    gate.stalled = {"/simple/dep-b/"}  # uv waits there, its new environment half made
    use_index(managed_home, gate.url)

    command = [
        str(venv.root / "bin" / "symphony"),
        "--home",
        str(managed_home),
        "upgrade",
        "acme.two",
        "--yes",
    ]
    # its own session, signalled as a whole: what a terminal does on Ctrl-C
    process = subprocess.Popen(
        command,
        env={**venv.env, **with_uv(venv, managed_home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert gate.reached.wait(60), "uv never asked the index for dep-b"
        assert len(environments(managed_home, "acme-two")) == 2  # the new one, in the making
        assert any("uv" in name for name in children(process.pid))
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err
    assert "stopped (Ctrl-C)" in err
    left_as_it_was(venv, managed_home, kept)
    still_works(venv, managed_home)


def children(pid: int) -> list[str]:
    """The names of a process's children, from /proc."""
    names = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, _, rest = stat.partition(" (")[2].rpartition(")")
            if int(rest.split()[1]) == pid:
                names.append(name)
    return names


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own (it takes root, or CAP_SYS_ADMIN); under CI, not having one fails the test."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mount = shutil.which("mount")
    result = (
        subprocess.run(
            [mount, "-t", "tmpfs", "-o", "size=512m", "symphony-test", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mount
        else None
    )
    if result is None or result.returncode != 0:
        reason = (
            "FULL-DISK TEST NOT RUN: it mounts a small tmpfs, which needs root or CAP_SYS_ADMIN "
            f"({'no mount command' if result is None else result.stderr.strip()})"
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def shrink(folder: Path, free: int) -> None:
    """Make the tmpfs mounted at ``folder`` hold only ``free`` more bytes."""
    stat = os.statvfs(folder)
    used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
    size = (used + free) // 1024
    subprocess.run(["mount", "-o", f"remount,size={size}k", str(folder)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_one_clear_error_and_frees_what_it_took(
    venv: Venv, published: Index, small_disk: Path, tmp_path: Path
) -> None:
    home = small_disk / "home"
    home.mkdir()
    use_index(home, published.url)
    symphony_json(venv, home, "install", "acme-two==1.0.0", "--yes")
    (kept,) = environments(home, "acme-two")
    shrink(small_disk, 4 << 20)  # room for the state database, not for a second environment

    newer = acme_two_1_1(tmp_path / "newer")
    message = refused(venv, home, "upgrade", "acme.two", "--from", str(newer), "--yes")
    assert f"no space left to install acme-two under {home / 'envs' / 'acme-two'}" in message
    assert "No space left on device" in message or "os error 28" in message, "the system's own reason is kept"
    assert "free some space on that disk" in message
    left_as_it_was(venv, home, kept)
    still_works(venv, home)
