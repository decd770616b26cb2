"""The marketplace: a catalog built from a real index, signed with TUF, verified by hosts.

Everything runs for real: wheels published to a pypiserver on 127.0.0.1, a catalog built from it by
``symphony catalog build`` with keys the build makes, served over HTTP from a folder by ``http.server``,
and read by the ``symphony`` command of this environment. An attacker's moves (a tampered catalog, an old
timestamp replayed, metadata signed with a retired key) are made on copies of the published folder.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import shutil
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

pytest.importorskip("tuf", reason="the marketplace needs the symphony-sdk-core[marketplace] extra")

WORKSPACE = Path(__file__).resolve().parents[3]
CORE = WORKSPACE / "packages" / "symphony-core"
MOTIFS = WORKSPACE / "packages" / "symphony-motifs"
TARGETS = "symphony-motifs>=0.1,<0.2"
NET = '[[permissions]]\ntype = "net.connect"\nhosts = ["api.example.com:443"]\nreason = "Asks the weather."\n'
README = (
    "# Weather, in HTML\n\n<script>alert('pwned')</script>\n<img src=x onerror=alert(1)>\n"
    "\x1b[31mred\x1b[0m and \u202eright-to-left\n"
)
MIXED = "P\u0430y\u0440al helper"  # Latin with two Cyrillic letters that look like Latin ones
LONG = "N" * 300


# Wheels, written as a build backend writes them


def wheel(
    folder: Path,
    name: str,
    version: str,
    *,
    ext_id: str | None,
    manifest_extra: str = "",
    display: str | None = None,
    readme: str = "A test extension.\n",
    requires: tuple[str, ...] = (),
    salt: str = "",
) -> Path:
    """A wheel of one motif ``ext_id`` (a library when None), with a README and links in its METADATA."""
    module = name.replace("-", "_")
    stem = f"{module}-{version}"
    info = f"{stem}.dist-info"
    files: dict[str, str] = {f"{module}/__init__.py": f"VALUE = {salt!r}\n"}
    if ext_id is not None:
        shown = display or f"Test {ext_id}"
        files[f"{module}/symphony.toml"] = (
            f'id = "{ext_id}"\nkind = "motif"\nname = {json.dumps(shown)}\n'
            f'summary = "Exists to test the marketplace with {ext_id}."\ntargets = "{TARGETS}"\n{manifest_extra}'
        )
        files[f"{info}/entry_points.txt"] = f"[symphony.motifs]\n{ext_id} = {module}:Ext\n"
    headers = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {name} for tests",
        "Project-URL: Source, https://example.com/source",
        "Description-Content-Type: text/markdown",
        *(f"Requires-Dist: {requirement}" for requirement in requires),
    ]
    files[f"{info}/METADATA"] = "\n".join(headers) + "\n\n" + readme
    files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    rows = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*rows, f"{info}/RECORD,,"]) + "\n"
    target = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return target


# Servers on loopback


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, f"{url} did not answer within 30 s"
            time.sleep(0.2)


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1, as a static file server serves a marketplace."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def symphony(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run this environment's ``symphony`` command against ``home``."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("SYMPHONY_", "UV_", "PIP_"))
    }
    env.update(COLUMNS="200", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    command = [sys.executable, "-c", "from symphony_core._cli._commands import main; main()"]
    result = subprocess.run(
        [*command, "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def refused(home: Path, *args: str) -> str:
    result = symphony(home, *args, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    return " ".join(result.stderr.split())


@dataclass
class Market:
    index: str
    storage: Path
    out: Path
    keys: Path
    report: dict[str, Any]

    def copy(self, root: Path) -> Market:
        """A marketplace of its own (folder and keys) to attack or to sign again."""
        shutil.copytree(self.out, root / "out")
        shutil.copytree(self.keys, root / "keys")
        return Market(self.index, self.storage, root / "out", root / "keys", self.report)

    def catalog(self, *args: str) -> dict[str, Any]:
        result = symphony(
            self.out.parent, "catalog", *args, "--out", str(self.out), "--keys", str(self.keys), "--json"
        )
        data: dict[str, Any] = json.loads(result.stdout)
        return data


def host_home(root: Path, market: Market, url: str) -> Path:
    """A host's home that pins the marketplace's first root and installs from its index."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy2(market.out / "metadata" / "1.root.json", home / "market-root.json")
    (home / "install.toml").write_text(
        f'index = "{market.index}"\n\n[marketplace]\nurl = "{url}"\nroot = "market-root.json"\n',
        encoding="utf-8",
    )
    return home


def search(home: Path, *args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(symphony(home, "search", *args, "--json").stdout)
    return found


def nothing_installed(home: Path) -> bool:
    envs = home / "envs"
    return not envs.exists() or not [path for path in envs.rglob("*") if not path.name.startswith(".")]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    """pypiserver with four distributions, and the catalog ``symphony catalog build`` made of it."""
    storage = tmp_path_factory.mktemp("index")
    wheel(storage, "acme-weather", "1.0.0", ext_id="acme.weather")
    wheel(storage, "acme-weather", "1.1.0", ext_id="acme.weather", manifest_extra=NET, requires=(TARGETS,))
    wheel(storage, "acme-html", "1.0.0", ext_id="acme.html", display=MIXED, readme=README)
    wheel(storage, "acme-long", "1.0.0", ext_id="acme.long", display=LONG)
    wheel(storage, "acme-lib", "1.0.0", ext_id=None)
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
        index = f"http://127.0.0.1:{port}/simple/"
        wait_for(index)
        root = tmp_path_factory.mktemp("market")
        result = symphony(
            root,
            "catalog",
            "build",
            "--index",
            index,
            "--out",
            str(root / "out"),
            "--keys",
            str(root / "keys"),
            "--json",
        )
        yield Market(index, storage, root / "out", root / "keys", json.loads(result.stdout))
    finally:
        server.terminate()
        server.wait(timeout=10)


# Building and searching


def test_a_catalog_is_built_from_the_index_and_search_finds_an_extension(
    market: Market, tmp_path: Path
) -> None:
    report = market.report
    assert report["extensions"] == 2
    assert report["versions"] == {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 1}
    assert sorted(report["created_keys"]) == ["root", "snapshot", "targets", "timestamp"]
    assert report["skipped"] == ["acme_lib-1.0.0-py3-none-any.whl"]
    (long,) = report["refused"]  # a 300-character name: the manifest refuses it, so the catalog leaves it out
    assert long["file"] == "acme_long-1.0.0-py3-none-any.whl"
    assert "name" in long["why"]
    assert not list(market.out.rglob("*.pem"))  # the private keys stay in the keys folder

    with served(market.out) as url:
        home = host_home(tmp_path, market, url)
        (found,) = search(home, "weather")
        assert found["id"] == "acme.weather"
        assert (found["latest"], found["permissions"], found["kind"]) == ("1.1.0", 1, "motif")
        assert search(home, "weather", "--kind", "instrument") == []
        assert [item["id"] for item in search(home)] == ["acme.html", "acme.weather"]
        shown = json.loads(symphony(home, "catalog", "show", "acme.weather", "--json").stdout)
        assert [version["version"] for version in shown["versions"]] == ["1.0.0", "1.1.0"]
        assert shown["publisher"] == {"distribution": "acme-weather", "index": market.index}
        assert shown["permissions"][0]["reason"] == "Asks the weather."
        assert shown["links"] == {"Source": "https://example.com/source"}
        (file,) = shown["versions"][1]["files"]
        published = market.storage / "acme_weather-1.1.0-py3-none-any.whl"
        assert file == {
            "filename": published.name,
            "sha256": hashlib.sha256(published.read_bytes()).hexdigest(),
            "size": published.stat().st_size,
        }

        from symphony_core import Host

        host = Host(home)
        try:
            assert [listing.id for listing in host.search("weather")] == ["acme.weather"]
            assert host.listings().get("acme.html") is not None
        finally:
            host.close()


def test_html_scripts_and_mixed_scripts_are_carried_as_text_and_shown_escaped(
    market: Market, tmp_path: Path
) -> None:
    with served(market.out) as url:
        home = host_home(tmp_path, market, url)
        shown = json.loads(symphony(home, "catalog", "show", "acme.html", "--json").stdout)
        assert shown["readme"] == README  # stored as the author wrote it: data, never rendered here
        assert shown["name"] == MIXED
        assert [warning["code"] for warning in shown["warnings"]] == ["mixed-scripts"]
        text = symphony(home, "catalog", "show", "acme.html").stdout
        assert "<script>alert('pwned')</script>" in text  # shown as text
        assert "\x1b" not in text  # a terminal escape is never obeyed
        assert "\u202e" not in text  # nor a bidi control
        assert "\\u001b[31mred" in text
        assert "\\u202eright-to-left" in text
        listed = symphony(home, "search", "helper").stdout
        assert MIXED in listed
        assert "look twice: acme.html name" in listed


# Installing, verified against the catalog


def test_a_wheel_whose_hash_differs_from_the_catalogs_is_refused_and_nothing_installed(
    market: Market, tmp_path: Path
) -> None:
    # An index that serves another acme_weather-1.1.0 (its own hash matches what it lists), a release the
    # catalog does not list, and a distribution it does not list at all.
    static = tmp_path / "index"
    for name, version, salt in (
        ("acme-weather", "1.1.0", "evil"),
        ("acme-weather", "1.2.0", ""),
        ("acme-other", "1.0.0", ""),
    ):
        page = static / "simple" / name
        page.mkdir(parents=True, exist_ok=True)
        built = wheel(static, name, version, ext_id=name.replace("-", "."), salt=salt)
        digest = hashlib.sha256(built.read_bytes()).hexdigest()
        with (page / "index.html").open("a") as links:
            links.write(f'<a href="../../{built.name}#sha256={digest}">{built.name}</a>\n')
    with served(market.out) as url, served(static) as index:
        home = host_home(tmp_path, market, url)
        settings = home / "install.toml"
        settings.write_text(settings.read_text().replace(market.index, index + "simple/"))
        message = refused(home, "install", "acme-weather==1.1.0", "--yes")
        assert "acme_weather-1.1.0-py3-none-any.whl as downloaded from" in message
        assert "does not match the marketplace's signed hash" in message
        assert url in message
        assert "nothing was installed" in message
        message = refused(home, "install", "acme-weather", "--yes")
        assert "is not in the catalog of the marketplace" in message
        assert "which lists acme-weather 1.0.0, 1.1.0" in message
        message = refused(home, "install", "acme-other", "--yes")
        assert "acme-other is not listed in the catalog of the marketplace" in message
        assert nothing_installed(home)


@pytest.mark.slow
def test_install_is_verified_against_the_catalog(venv: Any, market: Market, tmp_path: Path) -> None:
    # The kit and the core the extension's environment needs, on the same index (what they need in turn
    # comes from PyPI through pypiserver); they are libraries to the catalog.
    for package in (CORE, MOTIFS):
        venv.run(
            venv.uv,
            "build",
            "--wheel",
            "--no-build-isolation",
            "--python",
            venv.build_python,
            "--out-dir",
            market.storage,
            package,
        )
    proxy = tmp_path / "proxy"
    proxy.mkdir()
    from symphony_core._runtime._install import DEFAULT_INDEX, _index_files

    (sdist,) = [
        file for file in _index_files(DEFAULT_INDEX, "proxy-tools") if file.filename.endswith(".tar.gz")
    ]
    with urllib.request.urlopen(sdist.url, timeout=60) as response:
        (proxy / sdist.filename).write_bytes(response.read())
    venv.run(
        venv.uv,
        "build",
        "--wheel",
        "--python",
        venv.build_python,
        "--out-dir",
        market.storage,
        proxy / sdist.filename,
    )
    with served(market.out) as url:
        home = host_home(tmp_path, market, url)
        done = json.loads(symphony(home, "install", "acme-weather", "--yes", "--json").stdout)
        assert (done["action"], done["version"]) == ("installed", "1.1.0")
        published = market.storage / "acme_weather-1.1.0-py3-none-any.whl"
        assert done["wheel_sha256"] == hashlib.sha256(published.read_bytes()).hexdigest()


# Bad catalogs: each refused with a clear reason, nothing installed


def test_a_tampered_or_unsigned_catalog_is_refused(market: Market, tmp_path: Path) -> None:
    attacked = market.copy(tmp_path / "attacked")
    (catalog,) = (attacked.out / "targets").glob("*.catalog.json")
    original = catalog.read_bytes()
    with served(attacked.out) as url:
        # the catalog itself, changed in place: its signed hash no longer matches
        catalog.write_bytes(original.replace(b"Asks the weather.", b"Harmless, trust me"))
        home = host_home(tmp_path / "one", attacked, url)
        message = refused(home, "search", "weather")
        assert (
            f"the marketplace {url} serves a file that does not match the hash its signed metadata gives"
            in message
        )
        assert "refused" in message
        assert "does not match the hash its signed metadata gives" in refused(
            home, "install", "acme-weather", "--yes"
        )
        assert nothing_installed(home)
        catalog.write_bytes(original)

        # the targets metadata, edited without the targets key: its signature no longer verifies
        (targets,) = (attacked.out / "metadata").glob("1.targets.json")
        signed = json.loads(targets.read_bytes())
        path = "wheels/acme_weather-1.1.0-py3-none-any.whl"
        signed["signed"]["targets"][path]["hashes"]["sha256"] = "0" * 64
        targets.write_text(json.dumps(signed))
        home = host_home(tmp_path / "two", attacked, url)
        message = refused(home, "install", "acme-weather", "--yes")
        assert "not signed by the keys this host trusts" in message
        assert nothing_installed(home)

        # no signature at all
        timestamp = attacked.out / "metadata" / "timestamp.json"
        unsigned = json.loads(timestamp.read_bytes())
        unsigned["signatures"] = []
        timestamp.write_text(json.dumps(unsigned))
        message = refused(host_home(tmp_path / "three", attacked, url), "search")
        assert "not signed by the keys this host trusts" in message
        assert "timestamp" in message


def test_an_expired_catalog_is_refused(market: Market, tmp_path: Path) -> None:
    frozen = market.copy(tmp_path / "frozen")
    assert frozen.catalog("refresh", "--timestamp-expires", "2s")["versions"]["timestamp"] == 2
    with served(frozen.out) as url:
        home = host_home(tmp_path, frozen, url)
        assert search(home, "weather")
        time.sleep(2.5)
        message = refused(home, "search", "weather")
        assert f"the marketplace {url} serves expired metadata" in message
        assert "symphony catalog refresh" in message


def test_a_rolled_back_catalog_is_refused(market: Market, tmp_path: Path) -> None:
    moving = market.copy(tmp_path / "moving")
    old = tmp_path / "old"
    shutil.copytree(moving.out, old)
    moving.catalog("refresh")
    with served(moving.out) as url:
        home = host_home(tmp_path, moving, url)
        assert search(home, "weather")  # the host has seen timestamp version 2
        shutil.copy2(old / "metadata" / "timestamp.json", moving.out / "metadata" / "timestamp.json")
        message = refused(home, "search", "weather")
        assert "older than what this host verified before: a rollback" in message
        assert nothing_installed(home)


def test_an_unreachable_marketplace_is_refused(market: Market, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    home = host_home(tmp_path, market, url)
    message = refused(home, "search", "weather")
    assert f"cannot reach the marketplace {url}" in message
    assert "[marketplace] in install.toml" in message
    assert f"cannot reach the marketplace {url}" in refused(home, "install", "acme-weather", "--yes")
    assert nothing_installed(home)


def test_a_host_without_tuf_is_told_what_to_install(
    market: Market, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from symphony_core._runtime._marketplace import MarketplaceError, open_marketplace
    from symphony_core._store._home import Home

    home = host_home(tmp_path, market, str(market.out))
    for name in [name for name in sys.modules if name == "tuf" or name.startswith("tuf.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tuf", None)
    with pytest.raises(MarketplaceError, match=r"needs python-tuf") as raised:
        open_marketplace(Home(home))
    assert (
        raised.value.hint
        == "install it into the host's environment: pip install 'symphony-sdk-core[marketplace]'"
    )


# Keys


def test_key_rotation_is_followed_by_hosts_that_pinned_the_old_root(market: Market, tmp_path: Path) -> None:
    rotating = market.copy(tmp_path / "rotating")
    old_timestamp_key = (rotating.keys / "timestamp.pem").read_bytes()
    with served(rotating.out) as url:
        home = host_home(tmp_path, rotating, url)  # pins 1.root.json
        assert search(home, "weather")
        done = rotating.catalog("rotate")
        assert done["rotated"] == ["root", "targets", "snapshot", "timestamp"]
        assert done["versions"]["root"] == 2
        retired = sorted(path.name.split("-")[0] for path in (rotating.keys / "retired").iterdir())
        assert retired == ["root", "snapshot", "targets", "timestamp"]
        root = json.loads((rotating.out / "metadata" / "2.root.json").read_bytes())
        assert len(root["signatures"]) == 2  # the old root key and the new
        assert search(home, "weather")  # the host followed the new root
        (trusted,) = (home / "marketplace").glob("*/metadata/root.json")
        assert json.loads(trusted.read_bytes())["signed"]["version"] == 2

        # a timestamp signed with the retired key is refused
        forged = _sign_timestamp_with(rotating.out, old_timestamp_key)
        (rotating.out / "metadata" / "timestamp.json").write_bytes(forged)
        assert "not signed by the keys this host trusts" in refused(home, "search")

    # a host pinned to the new root reads the marketplace from its folder as well
    fresh = host_home(tmp_path / "fresh", rotating, str(rotating.out))
    shutil.copy2(rotating.out / "metadata" / "2.root.json", fresh / "market-root.json")
    rotating.catalog("refresh")  # signs a timestamp with the new key over the forged one
    assert [item["id"] for item in search(fresh, "weather")] == ["acme.weather"]


def test_keys_inside_the_published_folder_are_refused(market: Market, tmp_path: Path) -> None:
    out = tmp_path / "out"
    message = refused(
        tmp_path, "catalog", "build", "--index", market.index, "--out", str(out), "--keys", str(out / "keys")
    )
    assert "its private keys would be published" in message


def _sign_timestamp_with(out: Path, pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata

    timestamp = Metadata.from_bytes((out / "metadata" / "timestamp.json").read_bytes())
    timestamp.signed.version += 1
    timestamp.signatures.clear()
    timestamp.sign(CryptoSigner(load_pem_private_key(pem, None)))
    return bytes(timestamp.to_bytes())


def test_the_command_and_a_host_without_a_marketplace_import_no_tuf(tmp_path: Path) -> None:
    code = (
        "import sys; from symphony_core._cli._commands import main; from symphony_core import Host; "
        "Host(sys.argv[1]).close(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('tuf', 'securesystemslib')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "home")], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
