"""``symphony dev`` refuses a folder that is not an extension project, saying what is missing and what
to do (the dev loop itself, on projects of each kit, is tested at the root: tests/test_dev.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from symphony_core._cli._commands import main

PYPROJECT = """
[project]
name = "acme-totals"
version = "0.1.0"
dependencies = ["symphony-operators>=0.1,<0.2"]
"""


def dev(folder: Path, home: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--home", str(home), "dev", str(folder), "--yes"])
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "src" / "acme_totals").mkdir(parents=True)
    (folder / "src" / "acme_totals" / "__init__.py").write_text("")
    return folder


def test_a_folder_without_pyproject_is_not_an_extension_project(tmp_path):
    (tmp_path / "notes").mkdir()

    status, output = dev(tmp_path / "notes", tmp_path / "home")

    assert status == 2
    assert "is not an extension project: it has no pyproject.toml" in output
    assert "symphony new operator" in output


def test_a_project_without_a_symphony_entry_point_is_told_where_to_register_one(project, tmp_path):
    (project / "pyproject.toml").write_text(PYPROJECT)

    status, output = dev(project, tmp_path / "home")

    assert status == 2
    assert "declares no Symphony entry point, so it is not an extension project" in output
    assert '[project.entry-points."symphony.operators"]' in output


def test_an_entry_point_without_a_manifest_is_told_to_add_one(project, tmp_path):
    (project / "pyproject.toml").write_text(
        PYPROJECT
        + textwrap.dedent(
            """
            [project.entry-points."symphony.operators"]
            "acme.totals" = "acme_totals:Totals"
            """
        )
    )

    status, output = dev(project, tmp_path / "home")

    assert status == 2
    assert "there is no symphony.toml beside it" in output
    assert "put the extension's manifest, symphony.toml, in its package folder" in output


def test_a_broken_pyproject_is_reported_with_its_toml_error(project, tmp_path):
    (project / "pyproject.toml").write_text("[project\n")

    status, output = dev(project, tmp_path / "home")

    assert status == 2
    assert "is not valid TOML" in output
