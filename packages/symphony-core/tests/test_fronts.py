"""Which front stands in the host for an isolated extension: its kit's, or a `RemoteExtension` when the
host has no such kit installed (its workers import the kit from their own environment)."""

from __future__ import annotations

import sys

import pytest

from symphony_core._model._kinds import KINDS
from symphony_core._security._sandbox._fronts import front_for


@pytest.mark.parametrize("kind", ["instrument", "operator"])
def test_a_kind_whose_kit_is_not_installed_here_has_no_front(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = KINDS[kind].module
    for name in [name for name in sys.modules if name == kit or name.startswith(f"{kit}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Missing(kit), *sys.meta_path])

    assert front_for(kind) is None


class _Missing:
    """An import finder for which ``name`` is not installed, as on a host without that kit."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == self.name:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def test_a_kind_without_a_front_has_none() -> None:
    assert front_for("motif") is None
    assert front_for("no-such-kind") is None


def test_a_kit_that_is_installed_but_broken_is_reported_not_passed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kit = KINDS["operator"].module
    for name in [name for name in sys.modules if name == kit or name.startswith(f"{kit}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, f"{kit}._isolated", None)  # the kit is there, its front module not

    with pytest.raises(ModuleNotFoundError):
        front_for("operator")
