"""Workers load bytecode the host wrote and never write any: the host compiles, into one cache per home,
what workers report they imported without it, and only files beneath the folders they import from.

Real workers of a small extension written to a temporary folder.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from symphony_core._model._errors import RemoteError
from symphony_core._security._sandbox import _bytecode
from symphony_core._security._sandbox._process import WorkerProcess
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._store._home import Home

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="isolated workers need Linux")

EXTENSION = r"""
import importlib, importlib.machinery, os, sys, types

from symphony_core import Extension


class Loader(Extension):
    def activate(self, context):
        self.context = context

    def load(self, name):
        module = importlib.import_module(name)
        return module.__spec__.cached, os.path.exists(module.__spec__.cached), module.VALUE

    def pretend(self, paths):
        # claim to have imported modules from these files (a worker's report is not to be trusted)
        self.pretended = getattr(self, "pretended", 0) + 1
        for number, path in enumerate(paths):
            name = f"fake_{self.pretended}_{number}"
            fake = types.ModuleType(name)
            fake.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=path)
            fake.__spec__.cached = path + "c"
            sys.modules[fake.__name__] = fake
        return len(paths)

    def plant(self, relative):
        path = os.path.join(sys.pycache_prefix, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(b"planted")

    def own_bytecode(self):
        return [name for _, _, names in os.walk(self.context.cache_dir) for name in names if name.endswith(".pyc")]
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    (folder / "acme_loader").mkdir(parents=True)
    (folder / "acme_loader" / "__init__.py").write_text(EXTENSION, encoding="utf-8")
    (folder / "acme_loader" / "helper.py").write_text("VALUE = 41 + 1\n", encoding="utf-8")
    return folder


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def start(code: Path, home: Home) -> Iterator[Callable[[str], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def starter(extension: str) -> WorkerProcess:
        spec = WorkerSpec(extension=extension, entry_point="acme_loader:Loader", home=home, path=(str(code),))
        worker = WorkerProcess.start(spec, timeout=60)
        started.append(worker)
        return worker

    yield starter
    for worker in started:
        worker.kill()


def shared(home: Home, source: Path | str) -> Path:
    """Where the shared cache keeps the bytecode of ``source``, as the import system names it."""
    tag = sys.implementation.cache_tag
    source = Path(source)
    return Path(_bytecode.folder(home) + str(source.parent)) / f"{source.stem}.{tag}.pyc"


def test_a_worker_writes_no_bytecode_and_the_next_worker_loads_what_the_host_compiled(
    start: Callable[[str], WorkerProcess], home: Home, code: Path
) -> None:
    first = start("acme.first")
    cached, exists, value = first.call("load", ("acme_loader.helper",))
    assert value == 42
    assert not exists  # the first import compiled it in memory: the worker may not write it
    assert first.call("own_bytecode") == []
    assert _bytecode.COMPILER.wait(60)
    assert Path(cached) == shared(home, code / "acme_loader" / "helper.py")
    assert Path(cached).is_file()

    second = start("acme.second")  # another extension, same environment: it loads the host's bytecode
    assert second.call("load", ("acme_loader.helper",)) == [cached, True, 42]
    assert second.call("own_bytecode") == []


def test_workers_cannot_write_the_shared_bytecode(start: Callable[[str], WorkerProcess], home: Home) -> None:
    worker = start("acme.planter")
    worker.call("load", ("acme_loader.helper",))
    assert _bytecode.COMPILER.wait(60)

    for relative in ("planted.pyc", "acme_loader/evil.cpython.pyc"):
        with pytest.raises(RemoteError) as refused:
            worker.call("plant", (relative,))
        assert refused.value.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    assert not any(path.name == "planted.pyc" for path in Path(_bytecode.folder(home)).rglob("*"))


def test_files_a_worker_names_outside_its_import_path_are_never_compiled(
    start: Callable[[str], WorkerProcess], home: Home, tmp_path: Path
) -> None:
    worker = start("acme.liar")
    own = home.data_dir("acme.liar") / "mine.py"
    own.write_text("SECRET = 'of its own folder'\n", encoding="utf-8")
    private = tmp_path / "private" / "settings.py"  # no worker may read it
    private.parent.mkdir()
    private.write_text("PASSWORD = 'hunter2'\n", encoding="utf-8")

    worker.call(
        "pretend", ([str(own), str(private), "relative.py", f"{private.parent}/../private/settings.py"],)
    )
    worker.call("own_bytecode")  # the answer carrying the report
    assert _bytecode.COMPILER.wait(60)

    compiled = [path.name for path in Path(_bytecode.folder(home)).rglob("*.pyc")]
    assert not [name for name in compiled if name.startswith(("mine.", "settings."))]


def test_only_regular_python_files_beneath_the_roots_are_shareable(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "good.py").write_text("X = 1\n", encoding="utf-8")
    (root / "pkg" / "data.txt").write_text("", encoding="utf-8")
    outside = tmp_path / "outside.py"
    outside.write_text("X = 2\n", encoding="utf-8")
    os.symlink(outside, root / "pkg" / "link.py")
    (root / "pkg" / "folder.py").mkdir()
    big = root / "pkg" / "big.py"
    big.write_bytes(b"#" * (_bytecode.MAX_SOURCE + 1))

    named = [
        str(root / "pkg" / "good.py"),
        str(root / "pkg" / "data.txt"),
        str(outside),
        str(root / "pkg" / "link.py"),
        str(root / "pkg" / "folder.py"),
        str(big),
        f"{root}/pkg/../../outside.py",
        "pkg/good.py",
        7,
        None,
    ]
    assert _bytecode.shareable(named, (str(root),)) == [str(root / "pkg" / "good.py")]


def test_a_worker_naming_files_without_end_costs_the_host_a_bounded_look(
    start: Callable[[str], WorkerProcess], home: Home, code: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bytecode, "MAX_JUDGED", 2 * _bytecode.MAX_REPORTED)
    worker = start("acme.flood")
    helper = str(code / "acme_loader" / "helper.py")
    for _ in range(3):  # each answer names the same real module and thousands of made-up ones
        worker.call(
            "pretend", ([helper, *(f"{code}/made_up_{n}.py" for n in range(_bytecode.MAX_REPORTED))],)
        )
        worker.call("own_bytecode")
    assert _bytecode.COMPILER.wait(60)
    judged = worker._judged  # past the cap after two floods: the third answer's names were not looked at
    assert _bytecode.MAX_JUDGED <= judged < _bytecode.MAX_JUDGED + _bytecode.MAX_REPORTED
    assert shared(home, helper).is_file()  # the real one is compiled, once: it is fresh after that
    stamp = shared(home, helper).stat().st_mtime_ns
    worker.call("pretend", ([helper],))
    worker.call("own_bytecode")
    assert _bytecode.COMPILER.wait(60)
    assert shared(home, helper).stat().st_mtime_ns == stamp, "fresh bytecode is not compiled again"
