"""Errors and results cross from an isolated worker as their own classes, and only the classes the host
registered itself: a worker that names another class, or sends data a class does not declare, gets a
`RemoteError` or plain data, never an object the host did not choose to make.

The worker tests run a real worker of a small extension; the registry tests use the host's real
registry (restored after each test) and real packages written into a temporary folder.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from symphony_core import ErrorDetail, register_error, register_result
from symphony_core._model import _crossing
from symphony_core._model._errors import (
    ConfigError,
    ConsentRequired,
    ExtensionFailed,
    ManifestError,
    RemoteError,
    SandboxError,
    SymphonyError,
    WorkerCrashed,
)
from symphony_core._security._sandbox._bulk import RESULT, Codec
from symphony_core._security._sandbox._probe import probe
from symphony_core._security._sandbox._process import WorkerProcess, _remote
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._security._sandbox._protocol import Failure
from symphony_core._store._home import Home

SHAPES = """
from dataclasses import dataclass, field

from symphony_core import register_result


@register_result
@dataclass(frozen=True)
class Box:
    width: int
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Loose:
    width: int
"""
EXTENSION = '''
import msgspec

from symphony_core import ConfigError, ErrorDetail, Extension, ManifestError
from symphony_core._security._sandbox._bulk import RESULT
from acme_shapes import Box, Loose


class OwnConfigError(ConfigError):
    """The extension's own subclass: it crosses as the nearest registered class."""


class Crossing(Extension):
    def bad_manifest(self):
        raise ManifestError(
            "invalid manifest",
            extension="acme.other",
            file="acme/symphony.toml",
            problems=[ErrorDetail("acme/symphony.toml: id", "Field required", "missing")],
            hint="add an id",
        )

    def bad_config(self):
        raise OwnConfigError("invalid config", problems=[ErrorDetail("threshold", "too low", "greater_than")])

    def box(self):
        return Box(3, ["a", "b"])

    def loose(self):
        return Loose(3)

    def forged_box(self):
        return msgspec.msgpack.Ext(RESULT, b"acme_shapes.Box\\0" + msgspec.msgpack.encode({"width": "wide"}))
'''
EXTENSION_ID = "acme.crossing"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's registry as it is now; what a test registers is forgotten after it."""
    for name in ("ERRORS_FROM_WORKERS", "RESULTS_FROM_WORKERS", "_ERROR_NAMES", "_RESULT_NAMES"):
        monkeypatch.setattr(_crossing, name, dict(getattr(_crossing, name)))


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Write importable top-level modules into a folder on ``sys.path``; they are forgotten afterwards."""
    folder = tmp_path / "packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def write(name: str, text: str) -> None:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(textwrap.dedent(text), encoding="utf-8")
        written.append(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)


def failure(**fields: Any) -> Failure:
    return Failure(
        id=1, type=fields.pop("type", "acme.Oops"), message=fields.pop("message", "it broke"), **fields
    )


# The registry


@pytest.mark.parametrize("verdict", [ConsentRequired, WorkerCrashed, RemoteError])
def test_the_hosts_verdicts_cannot_be_registered(registry: None, verdict: type[SymphonyError]) -> None:
    class Disguised(verdict):
        pass

    for cls in (verdict, Disguised):
        with pytest.raises(TypeError, match="verdicts"):
            register_error(cls)
    with pytest.raises(TypeError, match="not a SymphonyError"):
        register_error(ValueError)


def test_a_name_is_registered_for_one_class_only(registry: None) -> None:
    first = type("Oops", (SymphonyError,), {"__module__": "acme_one.errors"})
    second = type("Oops", (SymphonyError,), {"__module__": "acme_one.other"})

    assert register_error(first) is first
    assert register_error(first) is first  # again: no harm
    with pytest.raises(ValueError, match=r"'acme_one\.Oops' is registered already"):
        register_error(second)
    assert _crossing.error_name(type("Sub", (first,), {})) == "acme_one.Oops"


def test_only_dataclasses_and_structs_are_registered_as_results(registry: None) -> None:
    class Plain:
        pass

    with pytest.raises(TypeError, match="neither a dataclass nor a msgspec Struct"):
        register_result(Plain)
    point = type("Point", (msgspec.Struct,), {"__annotations__": {"x": int}, "__module__": "acme_two"})
    assert register_result(point) is point


def test_a_kit_is_imported_for_its_own_names_only(
    registry: None, packages: Callable[[str, str], None]
) -> None:
    packages(
        "acmekit",
        """
        from symphony_core import SymphonyError, register_error

        @register_error
        class Jammed(SymphonyError):
            pass
        """,
    )
    packages("acmeother", "raise RuntimeError('never imported')\n")

    assert _crossing.error_class("acmekit.Jammed") is None  # no kit named: nothing imported
    assert "acmekit" not in sys.modules
    assert _crossing.error_class("acmeother.Jammed", "acmekit") is None
    assert "acmeother" not in sys.modules
    assert "acmekit" not in sys.modules
    jammed = _crossing.error_class("acmekit.Jammed", "acmekit")
    assert jammed is not None
    assert jammed.__module__ == "acmekit"


# What the host makes of a worker's failure


def test_a_registered_error_is_rebuilt_with_its_problems_and_declared_data_only() -> None:
    error = _remote(
        failure(
            symphony="symphony_core.ManifestError",
            message="invalid manifest",
            hint="add an id",
            extension="acme.other",
            problems=[("acme/symphony.toml: id", "Field \x1b[2Jrequired", "missing")],
            data={"file": "acme/\x1b]0;symphony.toml", "summary": "forged", "extension": "acme.other"},
        ),
        EXTENSION_ID,
    )

    assert type(error) is ManifestError
    assert (error.extension, error.hint, error.summary) == (
        EXTENSION_ID,
        "the extension says: add an id",
        "invalid manifest",
    )
    assert error.problems == (ErrorDetail("acme/symphony.toml: id", "Field [2Jrequired", "missing"),)
    assert error.file == "acme/]0;symphony.toml"
    assert error.message == "invalid manifest\n  - acme/symphony.toml: id: Field [2Jrequired"


def test_a_name_the_host_did_not_register_arrives_as_a_remote_error_with_its_problems() -> None:
    for name in (
        "ConsentRequired",
        "symphony_core.ConsentRequired",
        "symphony_core._model._errors.ConfigError",
        "builtins.ValueError",
        "acme_nowhere.Oops",
    ):
        error = _remote(failure(symphony=name, problems=[("count", "too big", "")]), EXTENSION_ID)

        assert type(error) is RemoteError, name
        assert not isinstance(error, (ConsentRequired, SandboxError, ConfigError))
        assert error.extension == EXTENSION_ID
        assert error.problems == (ErrorDetail("count", "too big"),)


def test_an_error_is_rebuilt_without_running_its_constructor(registry: None) -> None:
    ran: list[str] = []

    class Careful(ExtensionFailed):
        data_fields = ("depth", "names")

        def __init__(self, message: str) -> None:
            ran.append(message)
            super().__init__(message)

    Careful.__module__, Careful.__qualname__ = "acme_three", "Careful"
    register_error(Careful)
    error = _remote(
        failure(
            symphony="acme_three.Careful",
            data={"depth": 3, "names": ["a" * 10_000, {"x": "y"}] * 500, "other": 1},
        ),
        EXTENSION_ID,
    )

    assert isinstance(error, Careful)
    assert ran == []
    assert error.depth == 3
    names = error.names
    assert len(names) == 100
    assert len(names[0]) < 5 << 10
    assert not hasattr(error, "other")


def test_problems_unpack_as_pairs_for_one_release_with_a_warning() -> None:
    error = ConfigError("invalid config", problems=[("threshold", "too low")])

    with pytest.warns(DeprecationWarning, match="read .location and .message"):
        ((location, message),) = error.problems
    assert (location, message) == ("threshold", "too low")
    assert str(error) == "invalid config\n  - threshold: too low"


# Results through the codec


def test_a_result_naming_a_type_the_host_does_not_know_arrives_as_plain_data(registry: None) -> None:
    host = Codec(side="host", exchange="", inline_limit=1 << 16)

    value = host.decode(RESULT, memoryview(b"acme_four.Shape\0" + msgspec.msgpack.encode({"width": 2})))

    assert value == {"width": 2}
    with pytest.raises(ValueError, match="no registered name"):
        host.decode(RESULT, memoryview(b"\0" + msgspec.msgpack.encode({})))


# Through a real worker


needs_workers = pytest.mark.skipif(
    not probe().supported, reason="the isolated tier needs Linux; the probe reports nothing enforced"
)


@pytest.fixture
def worker(tmp_path: Path, packages: Callable[[str, str], None], registry: None) -> Iterator[WorkerProcess]:
    packages("acme_shapes", SHAPES)
    packages("acme_crossing", EXTENSION)
    import acme_shapes  # noqa: F401 - the host registers Box as the kit would, by importing it

    spec = WorkerSpec(
        extension=EXTENSION_ID,
        entry_point="acme_crossing:Crossing",
        home=Home(tmp_path / "home"),
        path=(str(tmp_path / "packages"),),
    )
    started = WorkerProcess.start(spec, timeout=60)
    yield started
    started.kill()


@needs_workers
def test_an_error_from_a_worker_is_its_registered_class_with_its_problems(worker: WorkerProcess) -> None:
    with pytest.raises(ManifestError) as manifest:
        worker.call("bad_manifest")
    with pytest.raises(ConfigError) as config:
        worker.call("bad_config")

    assert manifest.value.extension == EXTENSION_ID
    assert manifest.value.file == "acme/symphony.toml"
    assert manifest.value.problems == (ErrorDetail("acme/symphony.toml: id", "Field required", "missing"),)
    assert type(config.value) is ConfigError  # the nearest registered class of the extension's own
    assert config.value.problems == (ErrorDetail("threshold", "too low", "greater_than"),)


@needs_workers
def test_a_registered_result_crosses_as_itself_and_others_as_plain_data(worker: WorkerProcess) -> None:
    from acme_shapes import Box

    assert worker.call("box") == Box(3, ["a", "b"])
    assert type(worker.call("box")) is Box
    assert worker.call("loose") == {"width": 3}


@needs_workers
def test_a_result_whose_fields_do_not_fit_its_type_ends_the_worker(worker: WorkerProcess) -> None:
    with pytest.raises(WorkerCrashed, match="an unreadable message"):
        worker.call("forged_box")
