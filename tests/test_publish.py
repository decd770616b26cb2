"""Publish rehearsal: upload the built distributions to a real package index on loopback and install
them from there into fresh venvs, as a user would from PyPI.

Dependency confusion, and why the installs go in two steps. pip treats `--index-url` and every
`--extra-index-url` alike: it gathers the candidates of a name from all of them and takes the highest
version. "Local index first, PyPI as extra" is therefore no protection: anyone can upload a
`symphony-sdk-core` 0.1.99 to PyPI and pip would prefer it to ours, and the PyPI name `symphony-core`
already belongs to someone else. So:

1. every `symphony-*` distribution is installed from the local index ONLY, with `--no-deps`, walking the
   `symphony-*` requirements of what was installed until none is missing (this is how the core "comes
   along" with `symphony-instruments`);
2. then the same requirement is installed again with the local index plus pip's default index (PyPI),
   for the third-party dependencies only: every `symphony-*` requirement is already satisfied, so pip
   never looks any of them up on PyPI and cannot swap one for a foreign release.

The tests then prove the core is ours (same version, same file hashes as the wheel built here) and that
`symphony-core` is absent. pip runs with `PIP_CONFIG_FILE=/dev/null` and without this machine's `PIP_*`
index settings (its certificate setting stays), so nothing but the named indexes is consulted.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CORE, SQUATTED = "symphony-sdk-core", "symphony-core"
PACKAGES = ("symphony-core", "symphony-instruments", "symphony-operators", "symphony-motifs")
if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Create a venv holding what `hatch run release:...` has (pypiserver, twine); return its bin dir."""
    from uv import find_uv_bin

    venv = tmp_path_factory.mktemp("publish-tools") / "venv"
    requirements = tomllib.loads((ROOT / "hatch.toml").read_text())["envs"]["release"]["dependencies"]
    uv = [find_uv_bin(), "--no-config"]
    subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, venv], check=True)
    subprocess.run([*uv, "pip", "install", "--quiet", "--python", venv, *requirements], check=True)
    return venv / "bin"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the sdist and wheel of the four packages and of the route-delays example."""
    from uv import find_uv_bin

    out = tmp_path_factory.mktemp("dist")
    for project in [*(ROOT / "packages" / p for p in PACKAGES), ROOT / "examples/route-delays"]:
        dest = out / project.name
        subprocess.run(
            [find_uv_bin(), "--no-config", "build", "--quiet", "--out-dir", dest, project],
            check=True,
            env=os.environ | {"SOURCE_DATE_EPOCH": "1700000000"},
        )
    return out


def find_free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def index(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run pypiserver on loopback (uploads allowed without a password) and return its root URL."""
    port = find_free_port()
    storage = tmp_path_factory.mktemp("index")
    server = subprocess.Popen(
        [tools / "pypi-server", "run", "-i", "127.0.0.1", "-p", str(port), "-P", ".", "-a", ".", storage],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}simple/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "pypiserver exited"
                assert time.monotonic() < deadline, "pypiserver did not answer within 30 s"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def upload(tools: Path, index: str, folder: Path) -> None:
    """Upload every file of a build folder with twine."""
    files = sorted(folder.glob("*.whl")) + sorted(folder.glob("*.tar.gz"))
    subprocess.run(
        [
            tools / "twine",
            "upload",
            "--non-interactive",
            "--repository-url",
            index,
            "-u",
            "rehearsal",
            "-p",
            "-",
            *files,
        ],
        check=True,
        capture_output=True,
    )


def pip_env() -> dict[str, str]:
    """Return an environment in which pip reads no config file and none of this machine's index settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    if "PIP_CERT" in os.environ:
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def pip(venv: Path, *args: str) -> str:
    """Run the venv's pip, returning its output."""
    proc = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", *args],
        env=pip_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def list_installed(venv: Path) -> dict[str, str]:
    """Map each distribution in the venv to its version."""
    listing = json.loads(pip(venv, "list", "--format", "json"))
    return {canonicalize_name(d["name"]): d["version"] for d in listing}


def install_ours_from_the_local_index(venv: Path, index: str, requirement: str) -> list[str]:
    """Install requirement and, recursively, its `symphony-*` requirements from the local index only."""
    simple = f"{index}simple/"
    pending, done = [requirement], []
    while pending:
        current = pending.pop()
        pip(venv, "install", "--quiet", "--no-deps", "--index-url", simple, current)
        name = canonicalize_name(Requirement(current).name)
        done.append(name)
        script = f"import importlib.metadata as m, json; print(json.dumps(m.requires({name!r}) or []))"
        probe = subprocess.run(
            [venv / "bin" / "python", "-c", script], capture_output=True, text=True, check=True
        )
        for raw in json.loads(probe.stdout):
            dep = Requirement(raw)
            ours = canonicalize_name(dep.name).startswith("symphony-")
            if (
                ours
                and canonicalize_name(dep.name) not in done
                and (dep.marker is None or dep.marker.evaluate())
            ):
                pending.append(raw)
    return done


def read_wheel_hashes(wheel: Path, prefix: str) -> dict[str, str]:
    """Read a wheel's RECORD: the hash of each file under prefix."""
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        rows = csv.reader(io.StringIO(archive.read(record).decode()))
        return {path: digest for path, digest, _ in rows if path.startswith(prefix)}


def hash_file(path: Path) -> str:
    """Hash a file the way a wheel's RECORD does."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def find_site_packages(venv: Path) -> Path:
    """Find the venv's site-packages."""
    return next(venv.glob("lib/python*/site-packages"))


@pytest.fixture(scope="module")
def published(tools: Path, dist: Path, index: str) -> str:
    """Upload the four distributions and the route-delays example; return the index's root URL."""
    for folder in sorted(dist.iterdir()):
        upload(tools, index, folder)
    return index


@pytest.fixture(scope="module")
def instruments_venv(published: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Install symphony-instruments from the index into a fresh venv, in the two steps described above."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    ours = install_ours_from_the_local_index(venv, published, "symphony-instruments")
    pip(venv, "install", "--quiet", "--extra-index-url", f"{published}simple/", "symphony-instruments")
    return venv, ours


def test_published_instruments_install_from_the_index_with_our_core_and_nothing_foreign(
    dist, published, instruments_venv
):
    venv, ours = instruments_venv
    listing = urllib.request.urlopen(f"{published}simple/{CORE}/", timeout=10).read().decode()
    pip(venv, "check")

    assert "symphony_sdk_core-" in listing
    assert ours == ["symphony-instruments", CORE]
    versions = list_installed(venv)
    core_wheel = next((dist / "symphony-core").glob("*.whl"))
    assert versions[CORE] == core_wheel.name.split("-")[1]
    built = read_wheel_hashes(core_wheel, "symphony_core/")
    assert built
    assert {p: hash_file(find_site_packages(venv) / p) for p in built} == built
    assert {"onnxruntime", "numpy"} <= versions.keys()
    assert not {SQUATTED, "symphony-operators", "symphony-motifs", "polars", "pywebview"} & versions.keys()


def test_a_published_extension_is_discovered_by_the_host_in_that_venv(published, instruments_venv, tmp_path):
    venv, _ = instruments_venv

    ours = install_ours_from_the_local_index(venv, published, "symphony-example-route-delays")
    pip(
        venv,
        "install",
        "--quiet",
        "--extra-index-url",
        f"{published}simple/",
        "symphony-example-route-delays",
    )
    listed = subprocess.run(
        [venv / "bin" / "symphony", "list", "--json"],
        env=pip_env() | {"SYMPHONY_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        check=True,
    )

    assert ours == ["symphony-example-route-delays", "symphony-operators", CORE]
    extensions = {info["id"]: info for info in json.loads(listed.stdout)}
    assert extensions["examples.route-delays"]["distribution"] == "symphony-example-route-delays"
    assert extensions["examples.route-delays"]["state"] != "failed"
    assert SQUATTED not in list_installed(venv)
