"""``symphony publish``: a project built, validated strictly, previewed as a marketplace lists it, and
uploaded to a real index, or stopped with one clear error.

Everything is real: the project is what ``symphony new motif`` writes with the motifs kit, built by the
``build`` frontend (hatchling in an isolated environment, from PyPI), and uploaded by twine to a
pypiserver on 127.0.0.1 that asks for a password. The command runs in an environment of its own that has
the core with its ``publish`` extra; the session's environment, which lacks it, shows what happens
without build and twine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

WORKSPACE = Path(__file__).resolve().parents[3]
CORE = WORKSPACE / "packages" / "symphony-core"
Venv = Any  # conftest's `Venv`
USER, PASSWORD = "author", "s3cret"
WHEEL, SDIST = "acme_hello-0.1.0-py3-none-any.whl", "acme_hello-0.1.0.tar.gz"

# pypiserver's own WSGI app, with uploads allowed for one user (its htpasswd files would need passlib).
SERVER = """
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pypiserver


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


app = pypiserver.app(
    roots=[sys.argv[1]],
    authenticate=["update"],
    password_file=".",
    auther=lambda user, password: (user, password) == (sys.argv[3], sys.argv[4]),
    disable_fallback=True,
)
make_server("127.0.0.1", int(sys.argv[2]), app, handler_class=Quiet).serve_forever()
"""

PERMISSION = """
[[permissions]]
type = "net.connect"
hosts = ["api.example.com:443"]
reason = "{reason}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Index:
    """A pypiserver on loopback: its upload URL, and what its simple API lists."""

    url: str
    storage: Path

    def files(self, project: str = "acme-hello") -> dict[str, str]:
        """The files of ``project`` on the simple API, with the SHA-256 each link carries."""
        try:
            with urllib.request.urlopen(f"{self.url}simple/{project}/", timeout=10) as response:
                page = response.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {}
            raise
        found = re.findall(r'href="[^"]*#sha256=([0-9a-f]+)">([^<]+)</a>', page)
        return {name: digest for digest, name in found}

    def download(self, filename: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}packages/{filename}", timeout=10) as response:
            return bytes(response.read())


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    storage = tmp_path / "index"
    storage.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, storage, str(port), USER, PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "simple/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "the index exited"
                assert time.monotonic() < deadline, f"{url} did not answer within 30 s"
                time.sleep(0.2)
        yield Index(url, storage)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def publisher(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """An author's environment: the kits, and the core with its ``publish`` extra (build, twine)."""
    environment = type(venv)(
        tmp_path_factory.mktemp("publisher") / "env", venv.uv, venv.build_python, venv.env
    )
    environment.run(venv.uv, "venv", "--quiet", "--python", sys.executable, environment.root)
    environment.install_kits()
    environment.run(
        venv.uv, "pip", "install", "--quiet", "--python", environment.python, "-e", f"{CORE}[publish]"
    )
    return environment


@pytest.fixture(scope="module")
def generated(publisher: Venv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The motif project ``symphony new`` writes, asking for one permission."""
    folder = tmp_path_factory.mktemp("generated") / "acme-hello"
    publisher.run(
        publisher.root / "bin" / "symphony",
        "new",
        "motif",
        "acme-hello",
        "--dir",
        folder,
        "--no-input",
        "--no-git",
    )
    with (folder / "src/acme_hello/symphony.toml").open("a", encoding="utf-8") as manifest:
        manifest.write(PERMISSION.format(reason="Looks up the names it greets."))
    return folder


@pytest.fixture
def project(generated: Path, tmp_path: Path) -> Path:
    """A fresh copy of the generated project for one test."""
    return Path(shutil.copytree(generated, tmp_path / "acme-hello"))


def publish(
    environment: Venv, *args: str | Path, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    """``symphony publish ARGS`` without a terminal, the password in TWINE_PASSWORD as CI passes it."""
    return environment.run(
        environment.root / "bin" / "symphony",
        "publish",
        *args,
        check=False,
        env={"TWINE_USERNAME": USER, "TWINE_PASSWORD": password},
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_publish_builds_checks_shows_the_listing_and_uploads_the_wheel_hosts_install(
    publisher: Venv, project: Path, index: Index, make: Any
) -> None:
    result = publish(publisher, project, "--repository-url", index.url, "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    text = make.normalize(result.stdout)
    assert (
        "metadata: ok manifest: ok permissions: ok entry-points: ok imports: ok dependencies: ok valid"
        in text
    )
    assert "Hello (acme.hello), motif, version 0.1.0 Greets people by name and counts the greetings." in text
    assert f"publisher: acme-hello on {index.url}" in text
    assert "net.connect api.example.com:443 reason: Looks up the names it greets." in text
    assert "README (text/markdown, shown as text): # acme-hello" in text
    assert f"uploaded {WHEEL} to {index.url}" in text
    on_index = index.files()
    assert sorted(on_index) == [WHEEL, SDIST]
    built = project / "dist" / WHEEL
    assert on_index[WHEEL] == sha256(built)
    assert index.download(WHEEL) == built.read_bytes()


@pytest.mark.slow
def test_a_dry_run_reports_in_json_what_would_be_published_and_uploads_nothing(
    publisher: Venv, project: Path, index: Index, tmp_path: Path
) -> None:
    dist = tmp_path / "out"
    result = publish(publisher, project, "--dry-run", "--json", "--dist-dir", dist)

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [file["filename"] for file in data["files"]] == [WHEEL, SDIST]
    assert data["files"][0]["sha256"] == sha256(dist / WHEEL)
    assert data["validation"]["valid"] is True
    (listed,) = data["listings"]
    assert (listed["id"], listed["name"], listed["kind"]) == ("acme.hello", "Hello", "motif")
    assert listed["permissions"] == [
        {"type": "net.connect", "hosts": ["api.example.com:443"], "reason": "Looks up the names it greets."}
    ]
    assert listed["readme"].startswith("# acme-hello")
    assert (data["dry_run"], data["uploaded"]) == (True, [])
    assert index.files() == {}


@pytest.mark.slow
def test_a_version_already_on_the_index_is_one_clear_error_naming_the_file(
    publisher: Venv, project: Path, index: Index, make: Any
) -> None:
    first = publish(publisher, project, "--repository-url", index.url, "--yes")
    assert first.returncode == 0, first.stderr

    again = publish(publisher, project, "--repository-url", index.url, "--yes")

    assert again.returncode == 1
    said = make.normalize(again.stderr)
    assert (
        f"error: {WHEEL} is already on the package index {index.url}; an index never replaces a file" in said
    )
    assert "what to do: raise the version in pyproject.toml, then publish again" in said
    assert sorted(index.files()) == [WHEEL, SDIST]


@pytest.mark.slow
def test_a_refused_password_and_an_index_that_is_down_are_one_clear_error_each(
    publisher: Venv, project: Path, index: Index, make: Any
) -> None:
    refused = publish(publisher, project, "--repository-url", index.url, "--yes", password="wrong")
    nobody = free_port()
    down = publish(publisher, project, "--repository-url", f"http://127.0.0.1:{nobody}/", "--yes")

    assert refused.returncode == 1
    said = make.normalize(refused.stderr)
    assert f"error: the package index {index.url} refused {WHEEL} (403 Forbidden)" in said
    assert "what to do: check the username and password" in said
    assert down.returncode == 1
    said = make.normalize(down.stderr)
    assert f"error: cannot reach the package index http://127.0.0.1:{nobody}/ to upload {WHEEL}" in said
    assert "Connection refused" in said
    assert index.files() == {}


@pytest.mark.slow
def test_a_wheel_that_fails_strict_validation_is_never_uploaded(
    publisher: Venv, project: Path, index: Index, make: Any
) -> None:
    manifest = project / "src/acme_hello/symphony.toml"
    manifest.write_text(
        manifest.read_text().replace("Looks up the names it greets.", "TODO: say why"), encoding="utf-8"
    )

    result = publish(publisher, project, "--repository-url", index.url, "--yes")

    assert result.returncode == 1
    text = make.normalize(result.stdout)
    assert f"error [permissions] {WHEEL}!acme_hello/symphony.toml" in text
    assert "invalid: 1 error(s)" in text
    assert "uploaded" not in text
    assert index.files() == {}


@pytest.mark.slow
def test_a_build_that_fails_shows_what_the_build_said_and_uploads_nothing(
    publisher: Venv, project: Path, index: Index, make: Any
) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"hatchling.build"', '"hatchling.nowhere"'), encoding="utf-8"
    )

    result = publish(publisher, project, "--repository-url", index.url, "--yes")

    assert result.returncode == 1
    assert "hatchling.nowhere" in result.stdout
    said = make.normalize(result.stderr)
    assert f"error: building {project} failed (python -m build exited with 1); nothing was uploaded" in said
    assert index.files() == {}


@pytest.mark.slow
def test_without_a_terminal_nothing_is_uploaded_unless_yes(
    publisher: Venv, project: Path, index: Index, make: Any
) -> None:
    result = publish(publisher, project, "--repository-url", index.url)

    assert result.returncode == 1
    assert "net.connect api.example.com:443" in make.normalize(result.stdout)
    said = make.normalize(result.stderr)
    assert f"not uploaded: no terminal to ask on before uploading {WHEEL}, {SDIST} to {index.url}" in said
    assert "pass --yes to upload from a script" in said
    assert index.files() == {}


@pytest.mark.slow
@pytest.mark.parametrize(("answer", "uploads"), [("n", False), ("y", True)])
def test_in_a_terminal_it_asks_before_uploading_default_no(
    publisher: Venv, project: Path, index: Index, answer: str, uploads: bool
) -> None:
    import pty

    command = [
        "env",
        "-i",
        *(f"{key}={value}" for key, value in publisher.env.items()),
        str(publisher.root / "bin" / "symphony"),
        "publish",
        str(project),
        "--repository-url",
        index.url,
        "--username",
        USER,
        "--password",
        PASSWORD,
    ]
    said = bytearray()

    def read(fd: int) -> bytes:
        data = os.read(fd, 1024)
        said.extend(data)
        if data.rstrip().endswith(b"[y/N]:"):
            os.write(fd, answer.encode() + b"\n")
        return data

    status = pty.spawn(command, read)

    assert os.waitstatus_to_exitcode(status) == (0 if uploads else 1), said.decode(errors="replace")
    assert f"Upload {WHEEL}, {SDIST} to {index.url}? [y/N]:" in said.decode(errors="replace")
    assert sorted(index.files()) == ([WHEEL, SDIST] if uploads else [])


def test_a_folder_that_is_not_an_extension_project_is_refused_before_anything_is_built(
    venv: Venv, tmp_path: Path, make: Any
) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "pyproject.toml").write_text(
        '[project]\nname = "acme-lib"\nversion = "1.0"\n', encoding="utf-8"
    )
    symphony = venv.root / "bin" / "symphony"

    empty = venv.run(symphony, "publish", tmp_path, "--dry-run", check=False)
    plain = venv.run(symphony, "publish", library, "--dry-run", check=False)

    assert empty.returncode == 2
    assert f"error: {tmp_path} is not a project folder: it has no pyproject.toml" in make.normalize(
        empty.stderr
    )
    assert plain.returncode == 2
    said = make.normalize(plain.stderr)
    assert (
        f"error: {library / 'pyproject.toml'} declares no Symphony entry point, so acme-lib is not an extension"
        in said
    )
    assert (
        'what to do: register the extension under one of [project.entry-points."symphony.instruments"]'
        in said
    )
    assert not (library / "dist").exists()


def test_without_build_and_twine_it_says_what_to_install(venv: Venv, tmp_path: Path, make: Any) -> None:
    folder = make.greeter("acme.greeter").write(tmp_path)

    result = venv.run(
        venv.root / "bin" / "symphony",
        "publish",
        folder,
        "--repository-url",
        "http://127.0.0.1:9/",
        check=False,
    )

    assert result.returncode == 1
    said = make.normalize(result.stderr)
    assert "error: publishing needs build and twine, which are not installed in this Python" in said
    assert "what to do: python -m pip install 'symphony-sdk-core[publish]'" in said
