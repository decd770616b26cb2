"""``symphony new``: a kit's template rendered into a project, and what goes wrong said plainly.

The core knows no kit, so these tests install a stand-in ``symphony-motifs`` in the place of the real
one, which registers a small template in ``symphony.scaffolds``, as the real kits do (the real
templates are tested at the root, with their kits). symphony-instruments is not installed here: that is
the missing kit.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys

import pytest
from packaging.version import Version

from symphony_core._authoring._scaffold import ScaffoldError, kit_requirement, project_names, render

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

KIT_FILES = {
    "stand_in_kit/__init__.py": """
        from pathlib import Path

        TEMPLATE = Path(__file__).parent / "template"
    """,
    "stand_in_kit/template/pyproject.toml.tmpl": """
        [project]
        name = "$distribution"
        dependencies = ["$requirement"]

        [project.entry-points."symphony.motifs"]
        "$id" = "$module:$class_name"
    """,
    "stand_in_kit/template/src/__module__/__init__.py.tmpl": """
        class $class_name:
            title = "$title"
    """,
    "stand_in_kit/template/src/__module__/symphony.toml.tmpl": """
        id = "$id"
        kind = "$kind"
        targets = "$requirement"
    """,
    "stand_in_kit/template/dot-gitignore": "dist/\n",
    "stand_in_kit/template/tests/test___module__.py.tmpl": "import $module\n",
}


@pytest.fixture(scope="module", autouse=True)
def stand_in_kit(venv, make, tmp_path_factory):
    kit = make.Project(
        name="symphony-motifs",
        version="0.3.2",
        files=KIT_FILES,
        entry_points={"motif": "stand_in_kit:TEMPLATE"},
        group="symphony.scaffolds",
    )
    venv.install(tmp_path_factory.mktemp("kit"), kit)
    yield
    venv.uninstall(kit.name)
    venv.install_kits()  # the real one, which the other tests' extensions are built on


def symphony(venv, *args):
    return venv.run(venv.root / "bin" / "symphony", *args, check=False)


def test_new_renders_the_kits_template_into_a_project_that_targets_the_installed_kit(venv, tmp_path):
    folder = tmp_path / "route-map"
    result = symphony(venv, "new", "motif", "acme.route-map", "--dir", folder, "--json")

    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    pyproject = tomllib.loads((folder / "pyproject.toml").read_text())
    manifest = tomllib.loads((folder / "src/acme_route_map/symphony.toml").read_text())
    assert {key: created[key] for key in ("id", "distribution", "module", "class_name", "requirement")} == {
        "id": "acme.route-map",
        "distribution": "acme-route-map",
        "module": "acme_route_map",
        "class_name": "RouteMap",
        "requirement": "symphony-motifs>=0.3,<0.4",
    }
    assert sorted(created["files"]) == [
        ".gitignore",
        "LICENSE",
        "pyproject.toml",
        "src/acme_route_map/__init__.py",
        "src/acme_route_map/symphony.toml",
        "tests/test_acme_route_map.py",
    ]
    assert created["folder"] == str(folder)
    assert pyproject["project"]["dependencies"] == ["symphony-motifs>=0.3,<0.4"]
    assert pyproject["project"]["entry-points"] == {
        "symphony.motifs": {"acme.route-map": "acme_route_map:RouteMap"}
    }
    assert manifest == {"id": "acme.route-map", "kind": "motif", "targets": "symphony-motifs>=0.3,<0.4"}
    assert (folder / "tests/test_acme_route_map.py").read_text() == "import acme_route_map\n"


def test_new_prints_the_files_and_the_next_steps(venv, tmp_path, make):
    result = symphony(venv, "new", "motif", "acme-map", "--dir", tmp_path / "map")

    assert result.returncode == 0, result.stderr
    text = make.normalize(result.stdout)
    assert f"created the motif acme.map in {tmp_path / 'map'}" in text
    assert "src/acme_map/symphony.toml" in text
    folder = tmp_path / "map"
    assert f'python -m pip install -e "{folder}[test]"' in text
    assert f"python -m pytest {folder}" in text
    assert f"symphony validate --strict {folder}" in text


def test_new_without_the_kit_of_that_kind_says_what_to_install(venv, tmp_path, make):
    result = symphony(venv, "new", "instrument", "acme-scorer", "--dir", tmp_path / "p")

    assert result.returncode == 1
    assert "no project template for an instrument" in make.normalize(result.stderr)
    assert "pip install symphony-instruments" in make.normalize(result.stderr)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("scorer", "'scorer' names no publisher"),
        ("acme scorer", "'acme scorer' cannot be a distribution name"),
        ("9lives-cat", "'9lives_cat' (from '9lives-cat') cannot be a Python import name"),
        ("symphony-core", "the import name 'symphony_core' is already taken by Symphony"),
    ],
)
def test_a_name_that_cannot_make_a_project_exits_2_with_the_reason(venv, tmp_path, make, name, says):
    result = symphony(venv, "new", "motif", name, "--dir", tmp_path / "p")

    assert result.returncode == 2
    assert says in make.normalize(result.stderr)
    assert not (tmp_path / "p").exists()


def test_new_never_writes_into_a_folder_that_holds_files(venv, tmp_path, make):
    (tmp_path / "notes.txt").write_text("mine")

    result = symphony(venv, "new", "motif", "acme-x", "--dir", tmp_path)

    assert result.returncode == 1
    assert "already exists and is not an empty folder" in make.normalize(result.stderr)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_new_writes_the_license_chosen_by_its_spdx_id_for_the_holder_named(venv, tmp_path):
    default = symphony(
        venv, "new", "motif", "acme-a", "--dir", tmp_path / "a", "--no-input", "--author", "Ada"
    )
    chosen = symphony(venv, "new", "motif", "acme-b", "--dir", tmp_path / "b", "--license", "apache-2.0")

    assert default.returncode == 0, default.stderr
    assert chosen.returncode == 0, chosen.stderr
    mit = (tmp_path / "a/LICENSE").read_text()
    assert mit.startswith("MIT License\n")
    assert f"Copyright (c) {datetime.date.today().year} Ada\n" in mit
    assert "Permission is hereby granted, free of charge" in mit
    apache = (tmp_path / "b/LICENSE").read_text()
    assert "Apache License" in apache
    assert "Version 2.0, January 2004" in apache
    assert "END OF TERMS AND CONDITIONS" in apache


def test_an_unknown_license_is_refused_with_the_ones_known(venv, tmp_path, make):
    result = symphony(venv, "new", "motif", "acme-x", "--dir", tmp_path / "p", "--license", "WTFPL")

    assert result.returncode == 2
    said = make.normalize(result.stderr)
    assert "unknown license 'WTFPL'" in said
    assert "MIT, Apache-2.0, BSD-3-Clause" in said
    assert not (tmp_path / "p").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed here")
def test_new_makes_the_project_a_git_repository_unless_told_not_to(venv, tmp_path):
    made = symphony(venv, "new", "motif", "acme-a", "--dir", tmp_path / "a", "--json")
    not_made = symphony(venv, "new", "motif", "acme-b", "--dir", tmp_path / "b", "--no-git", "--json")

    assert json.loads(made.stdout)["git"] is True
    assert (tmp_path / "a/.git").is_dir()
    assert json.loads(not_made.stdout)["git"] is False
    assert not (tmp_path / "b/.git").exists()


def test_new_without_git_installed_still_writes_the_project(venv, tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with Python and symphony, but no git
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    result = subprocess.run(
        [str(venv.root / "bin" / "symphony"), "new", "motif", "acme-x", "--dir", tmp_path / "p", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["git"] is False
    assert (tmp_path / "p/pyproject.toml").is_file()


@pytest.mark.parametrize(("args", "says"), [((), "missing KIND"), (("motif",), "missing NAME")])
def test_without_a_terminal_what_is_missing_is_an_error_never_a_prompt(venv, tmp_path, make, args, says):
    result = symphony(venv, "new", *args)

    assert result.returncode == 2
    assert says in make.normalize(result.stderr)


def test_in_a_terminal_new_asks_for_what_the_command_line_does_not_say(venv, tmp_path):
    import pty

    folder = tmp_path / "asked"
    command = [str(venv.root / "bin" / "symphony"), "new", "--dir", str(folder), "--no-git"]
    answers = iter(["motif", "acme-asked", "", "BSD-3-Clause", "Grace", "n"])
    said = bytearray()

    def read(fd: int) -> bytes:
        data = os.read(fd, 1024)
        said.extend(data)
        if data.rstrip().endswith((b":", b"]:", b"?", b"[Y/n]:")):
            os.write(fd, next(answers, "").encode() + b"\n")
        return data

    status = pty.spawn(command, read)

    assert os.waitstatus_to_exitcode(status) == 0, said.decode(errors="replace")
    assert "BSD 3-Clause License" in (folder / "LICENSE").read_text()
    assert "Grace" in (folder / "LICENSE").read_text()
    assert 'id = "acme.asked"' in (folder / "src/acme_asked/symphony.toml").read_text()


def test_names_derive_from_a_distribution_name_or_an_id():
    from_dist = project_names("operator", "Acme-Route_Stats")
    from_id = project_names("operator", "Acme.Route-Stats")
    explicit = project_names("operator", "route-stats", ext_id="acme.routes")

    assert (from_dist.distribution, from_dist.module, from_dist.id, from_dist.class_name) == (
        "acme-route-stats",
        "acme_route_stats",
        "acme.route-stats",
        "RouteStats",
    )
    assert (from_id.distribution, from_id.id, from_id.title) == (
        "acme-route-stats",
        "acme.route-stats",
        "Route stats",
    )
    assert (explicit.distribution, explicit.id, explicit.class_name) == (
        "route-stats",
        "acme.routes",
        "Routes",
    )
    assert project_names("operator", "acme-3d").class_name == "Operator3d"


def test_the_kit_range_runs_from_the_installed_release_to_the_next_breaking_one():
    import importlib.metadata

    major, minor = Version(importlib.metadata.version("symphony-sdk-core")).release[:2]
    upper = f"0.{minor + 1}" if major == 0 else str(major + 1)

    assert kit_requirement("symphony-sdk-core") == f"symphony-sdk-core>={major}.{minor},<{upper}"


def test_render_fills_templates_renames_paths_and_copies_other_files_as_they_are(tmp_path):
    template = tmp_path / "template"
    (template / "src" / "__module__").mkdir(parents=True)
    (template / "src" / "__module__" / "__init__.py.tmpl").write_text('NAME = "$id"  # costs $$5\n')
    (template / "dot-gitignore").write_text("dist/\n")
    (template / "data.txt").write_text("$not_a_placeholder")
    (template / "__pycache__").mkdir()
    (template / "__pycache__" / "junk.pyc").write_bytes(b"\0")

    written = render(template, tmp_path / "out", {"id": "acme.x", "module": "acme_x"})

    out = tmp_path / "out"
    assert sorted(path.relative_to(out).as_posix() for path in written) == [
        ".gitignore",
        "data.txt",
        "src/acme_x/__init__.py",
    ]
    assert (out / "src/acme_x/__init__.py").read_text() == 'NAME = "acme.x"  # costs $5\n'
    assert (out / "data.txt").read_text() == "$not_a_placeholder"


def test_a_template_with_an_unknown_placeholder_names_the_file_and_the_known_ones(tmp_path):
    template = tmp_path / "template"
    template.mkdir()
    (template / "README.md.tmpl").write_text("# $distribution by $author\n")

    with pytest.raises(ScaffoldError) as caught:
        render(template, tmp_path / "out", {"distribution": "acme-x", "module": "acme_x"})

    assert "template file README.md.tmpl uses an unknown or malformed placeholder: 'author'" in str(
        caught.value
    )
    assert "$distribution, $module" in str(caught.value)
