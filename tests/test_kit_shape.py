"""The three kits are one family: what an extension declares, how it reads its config, how it is made
standalone and what it raises are spelled the same way in each (docs/guides/kits.md).

The one deliberate difference checked here is ``activate``: async in the instruments kit (a model loads
off the event loop and the batcher runs on it), sync in the other two.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

import symphony_core
import symphony_instruments
import symphony_motifs
import symphony_operators


class Kit(typing.NamedTuple):
    module: ModuleType
    base: type[Any]
    error: type[symphony_core.SymphonyError]
    manifest: dict[str, Any]
    """The smallest manifest an extension of this kit activates with."""


KITS = {
    "symphony_instruments": Kit(
        symphony_instruments,
        symphony_instruments.Instrument,
        symphony_instruments.InstrumentError,
        {
            "id": "test.probe",
            "contributes": {
                "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 2]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch"]}],
            },
        },
    ),
    "symphony_operators": Kit(
        symphony_operators,
        symphony_operators.Operator,
        symphony_operators.OperatorError,
        {"id": "test.probe"},
    ),
    "symphony_motifs": Kit(
        symphony_motifs,
        symphony_motifs.Motif,
        symphony_motifs.MotifError,
        {"id": "test.probe", "contributes": {"page": "web/index.html"}},
    ),
}

CORE_NAMES = {
    "Config",
    "Context",
    "Manifest",
    "EnvVars",
    "FileRead",
    "FileWrite",
    "Gpu",
    "NetConnect",
    "NetListen",
    "Permission",
    "Subprocess",
    "check_access",
    "SymphonyError",
    "ErrorDetail",
    "ConfigError",
    "ExtensionFailed",
    "ManifestError",
    "PermissionDenied",
    "GuardDenied",
}

RENAMED_NAMES = [
    ("symphony_instruments", "PipelineClosed", "BatcherClosed"),
    ("symphony_operators", "Contract", "Contributions"),
    ("symphony_motifs", "MotifSpec", "Contributions"),
]

each_kit = pytest.mark.parametrize("name", list(KITS))


def probe(kit: Kit) -> type[Any]:
    """A subclass of the kit's base class that does nothing of its own."""
    return type("Probe", (kit.base,), {"__module__": __name__})


def made(kit: Kit, tmp_path: Path) -> Any:
    return probe(kit).create(manifest=kit.manifest, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")


def test_each_kit_re_exports_the_same_names_from_the_core() -> None:
    for kit in KITS.values():
        from_core = {name for name in kit.module.__all__ if name in symphony_core.__all__} - {"__version__"}
        assert from_core == CORE_NAMES, kit.module.__name__
        for name in from_core:
            assert getattr(kit.module, name) is getattr(symphony_core, name), name


@each_kit
def test_each_kit_exports_its_base_its_error_its_contributions_and_their_reader(name: str) -> None:
    kit = KITS[name]
    exported = set(kit.module.__all__)

    assert {
        kit.base.__name__,
        kit.error.__name__,
        "Contributions",
        "read_contributions",
        "__version__",
    } <= exported
    assert issubclass(kit.error, symphony_core.SymphonyError)
    assert issubclass(kit.module.Contributions, BaseModel)
    reader = inspect.signature(kit.module.read_contributions)
    assert list(reader.parameters)[:2] == ["manifest", "extension"]
    assert reader.parameters["extension"].kind is inspect.Parameter.KEYWORD_ONLY


def test_every_kit_creates_an_extension_standalone_with_the_same_signature() -> None:
    signatures = {name: inspect.signature(kit.base.create) for name, kit in KITS.items()}

    first = signatures["symphony_operators"]
    assert list(first.parameters) == ["config", "manifest", "data_dir", "cache_dir"]
    assert first.parameters["config"].default is None
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(first.parameters.values())[1:])
    for name, signature in signatures.items():
        assert list(signature.parameters.values()) == list(first.parameters.values()), name


@each_kit
def test_every_base_class_is_generic_in_its_config(name: str) -> None:
    kit = KITS[name]

    (parameter,) = kit.base.__parameters__
    assert isinstance(parameter, typing.TypeVar)
    assert issubclass(parameter.__bound__, symphony_core.Config)
    assert typing.get_type_hints(kit.base.config.fget)["return"] is parameter
    assert issubclass(kit.base.config_model, parameter.__bound__)


@each_kit
def test_the_config_parameter_is_the_config_used_when_the_manifest_names_none(
    name: str, tmp_path: Path
) -> None:
    kit = KITS[name]
    (parameter,) = kit.base.__parameters__

    class Settings(parameter.__bound__):  # type: ignore[misc, name-defined]
        level: int = 3

    class Probe(kit.base[Settings]):  # type: ignore[misc, name-defined]
        pass

    assert Probe.config_model is Settings
    assert Probe.create({"level": 4}, manifest=kit.manifest, data_dir=tmp_path).config == Settings(level=4)


@each_kit
@pytest.mark.parametrize("attribute", ["config", "contributions"])
def test_reading_config_or_contributions_before_activation_raises_the_kits_base_error(
    name: str, attribute: str
) -> None:
    kit = KITS[name]

    with pytest.raises(kit.error) as caught:
        getattr(probe(kit)(), attribute)

    assert type(caught.value) is kit.error
    assert caught.value.summary == f"Probe is not active, so it has no {attribute} yet"
    assert caught.value.hint == (
        "start it through a host (host.start(id)), or make one with Probe.create(...) in a test"
    )


@each_kit
def test_an_extension_made_standalone_reads_its_config_and_contributions(name: str, tmp_path: Path) -> None:
    kit = KITS[name]

    extension = made(kit, tmp_path)

    assert isinstance(extension.config, kit.base.config_model)
    assert isinstance(extension.contributions, kit.module.Contributions)
    assert extension.context.id == "test.probe"
    assert extension.context.data_dir == tmp_path / "data"


def test_activate_is_async_in_the_instruments_kit_only() -> None:
    asynchronous = {name for name, kit in KITS.items() if inspect.iscoroutinefunction(kit.base.activate)}

    assert asynchronous == {"symphony_instruments"}


@each_kit
def test_every_name_a_kit_defines_shows_the_kits_public_path(name: str) -> None:
    kit = KITS[name]
    for exported in kit.module.__all__:
        value = getattr(kit.module, exported)
        if exported in symphony_core.__all__ or not (isinstance(value, type) or inspect.isfunction(value)):
            continue  # the core's own names keep the core's path; constants and type aliases have none
        assert value.__module__ == name, f"{name}.{exported} shows {value.__module__}"


@pytest.mark.parametrize(("name", "old", "new"), RENAMED_NAMES)
def test_an_old_name_still_works_and_warns_naming_the_new_one(name: str, old: str, new: str) -> None:
    kit = KITS[name].module

    with pytest.warns(DeprecationWarning, match=f"use {name}.{new}"):
        value = getattr(kit, old)

    assert value is getattr(kit, new)
    assert old not in kit.__all__


@pytest.mark.parametrize(("name", "old"), [("symphony_operators", "contract"), ("symphony_motifs", "spec")])
def test_an_old_attribute_still_works_and_warns_naming_contributions(
    name: str, old: str, tmp_path: Path
) -> None:
    extension = made(KITS[name], tmp_path)

    with pytest.warns(DeprecationWarning, match="use .*contributions"):
        value = getattr(extension, old)

    assert value == extension.contributions


@pytest.mark.parametrize("name", ["symphony_operators", "symphony_motifs"])
def test_the_old_manifest_reader_still_works_and_warns_naming_read_contributions(name: str) -> None:
    kit = KITS[name]

    with pytest.warns(DeprecationWarning, match="use .*read_contributions"):
        value = kit.module.Contributions.from_manifest(kit.manifest, extension="test.probe")

    assert value == kit.module.read_contributions(kit.manifest, extension="test.probe")


def test_the_batcher_is_closed_with_batcher_closed_under_either_name() -> None:
    with pytest.warns(DeprecationWarning, match="BatcherClosed"):
        old = symphony_instruments.PipelineClosed

    assert issubclass(symphony_instruments.BatcherClosed, symphony_instruments.InstrumentError)
    with pytest.raises(old):
        raise symphony_instruments.BatcherClosed("the instrument has stopped")


def test_pipeline_errors_are_operator_errors() -> None:
    operators = symphony_operators
    for error in (operators.PipelineError, operators.SpecError, operators.SchemaMismatch, operators.BadData):
        assert issubclass(error, operators.PipelineError)
    assert issubclass(operators.PipelineError, operators.OperatorError)
    assert issubclass(operators.ContractError, operators.OperatorError)
