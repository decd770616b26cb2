"""Every name ``symphony_core`` exports says it lives in ``symphony_core``: reprs, tracebacks, pickles and
the API reference show ``symphony_core.Host``, never the underscore module that defines it, and nothing
that looks a class up by its module (pickle, type hints, the worker registry) breaks for it.

The names are read from ``__all__``, so a name exported later is checked too.
"""

from __future__ import annotations

import inspect
import multiprocessing
import pickle
import re
import subprocess
import sys
import textwrap
import typing
from concurrent.futures import ProcessPoolExecutor

import msgspec
import pytest

import symphony_core
from symphony_core import (
    Catalog,
    ConfigError,
    ErrorDetail,
    LifecycleEvent,
    Problem,
    Record,
    State,
    SymphonyError,
)
from symphony_core._model import _crossing, _errors

EXPORTED = {name: getattr(symphony_core, name) for name in symphony_core.__all__}
CLASSES_AND_FUNCTIONS = sorted(
    name for name, value in EXPORTED.items() if inspect.isclass(value) or inspect.isfunction(value)
)
FOR_TYPE_CHECKERS = {"InstallPlan"}
"""Classes whose annotations name a type their module imports for type checkers only."""


@pytest.mark.parametrize("name", CLASSES_AND_FUNCTIONS)
def test_every_exported_class_and_function_reports_symphony_core_as_its_module(name: str) -> None:
    assert EXPORTED[name].__module__ == "symphony_core"


def test_a_name_is_public_however_its_module_was_first_imported() -> None:
    # In a fresh interpreter that imports each defining module directly, as the core's own code does,
    # and never asks the package for the name.
    lazy: dict[str, str] = symphony_core._LAZY  # type: ignore[attr-defined]
    code = textwrap.dedent(
        f"""
        import importlib
        for name, module in {lazy!r}.items():
            value = getattr(importlib.import_module(module, "symphony_core"), name)
            if isinstance(value, type) or hasattr(value, "__code__"):
                assert value.__module__ == "symphony_core", (name, value.__module__)
            assert name not in vars(importlib.import_module("symphony_core")), name
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reprs_show_the_public_path() -> None:
    assert repr(symphony_core.Host) == "<class 'symphony_core.Host'>"
    assert repr(State.ACTIVE) == "<State.ACTIVE: 'active'>"
    assert repr(Problem("code", "message")) == "Problem(code='code', message='message', hint=None)"
    assert "symphony_core._" not in repr(ErrorDetail("count", "must be positive"))


@pytest.mark.parametrize("name", [n for n in CLASSES_AND_FUNCTIONS if n not in FOR_TYPE_CHECKERS])
def test_type_hints_of_exported_classes_still_resolve(name: str) -> None:
    value = EXPORTED[name]
    if isinstance(value, type):
        typing.get_type_hints(value)


def _catalog() -> Catalog:
    problem = Problem("incompatible", "needs Python 3.14", hint="upgrade Python")
    record = Record(
        id="acme.weather",
        kind="operator",
        group="symphony.operators",
        entry_point="acme_weather:Weather",
        distribution="acme-weather",
        distribution_version="1.0.0",
        requires_python=None,
        manifest_file=None,
        manifest_data=msgspec.Raw(msgspec.msgpack.encode({"id": "acme.weather"})),
        problem=problem,
    )
    return Catalog(records=(record,), packages={"symphony-sdk-core": "0.1.0"}, package_requires={})


def test_the_discovery_index_still_decodes_its_records() -> None:
    catalog = _catalog()
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(catalog), type=Catalog)
    assert decoded.records[0].problem == catalog.records[0].problem
    assert decoded.records[0].manifest == {"id": "acme.weather"}


def test_exported_classes_and_their_values_pickle_by_the_public_path() -> None:
    classes = [value for value in EXPORTED.values() if isinstance(value, type)]
    for cls in classes:
        dumped = pickle.dumps(cls)
        assert b"symphony_core._" not in dumped, cls
        assert pickle.loads(dumped) is cls
    values = (
        _catalog(),
        State.FAILED,
        LifecycleEvent("acme.weather", "active", "failed", "it raised"),
        ConfigError("bad config", extension="acme.weather", hint="fix it"),
    )
    # A fresh process (spawn) finds each class again through the package's lazy attributes.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        # The child runs only the standard library's pickle.loads (a function of this test module would
        # need the test folder importable there): it unpickles the values, then pickles them back.
        back = pool.submit(pickle.loads, pickle.dumps(values)).result(timeout=60)
    assert back[:3] == values[:3]
    assert type(back[3]) is ConfigError
    assert str(back[3]) == str(values[3])


def test_the_worker_registry_still_knows_the_core_errors_by_their_public_name() -> None:
    assert _crossing.error_name(ConfigError) == "symphony_core.ConfigError"
    assert _crossing.error_class("symphony_core.ConfigError") is ConfigError


def _tree() -> list[tuple[int, str]]:
    """The (depth, class name) of each line of the tree the errors module's docstring draws."""
    doc = _errors.__doc__ or ""
    block = re.search(r"```text\n(.*?)```", doc, re.DOTALL)
    assert block, "the errors module's docstring draws no tree"
    lines = []
    for line in block.group(1).splitlines():
        found = re.search(r"[A-Z]\w+", line)
        assert found, line
        lines.append((found.start() // 4, found.group(0)))
    return lines


def test_the_errors_module_draws_every_error_under_its_parent() -> None:
    errors = {
        name: value
        for name, value in vars(_errors).items()
        if isinstance(value, type) and issubclass(value, SymphonyError)
    }
    tree = _tree()
    assert {name for _, name in tree} == set(errors)
    parents: list[str] = []
    for depth, name in tree:
        del parents[depth:]
        if parents:
            assert errors[name].__bases__[0] is errors[parents[-1]], name
        parents.append(name)
