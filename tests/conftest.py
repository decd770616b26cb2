"""Fixtures shared by the cross-package tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from symphony_core import write_distribution

Install = Callable[[str, Mapping[str, str], Mapping[str, Mapping[str, str]]], None]
"""``install(distribution, files, entry_points)``: see `installed`."""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An empty folder to install distributions into, as a ``site-packages`` holds them."""
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


@pytest.fixture
def installed(site: Path) -> Install:
    """Installs a distribution into `site` with `symphony_core.write_distribution`: its files
    (dedented), its entry points (``{group: {name: "module:attr"}}``) and a requirement of the operators
    kit, in the layout an installer leaves (with a RECORD of each file's hash, which the host binds
    grants to)."""

    def install(
        distribution: str, files: Mapping[str, str], entry_points: Mapping[str, Mapping[str, str]]
    ) -> None:
        write_distribution(
            site,
            distribution,
            files={path: textwrap.dedent(text).lstrip() for path, text in files.items()},
            entry_points=entry_points,
            requires=["symphony-operators>=0.1,<0.2"],
        )

    return install
