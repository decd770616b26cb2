"""``symphony validate`` on projects and wheels with the mistakes authors make, each found where it is.

These projects register operators but subclass ``symphony_core.Extension`` (this environment has no
polars, so the operators kit cannot be imported): the private import is itself one of the findings.
The generated projects of the real kits are validated at the root, where the kits are installed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from symphony_core._authoring._validate import BadTarget, validate

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "acme-checked"
version = "1.2.0"
dependencies = [{dependencies}]

[project.entry-points."symphony.operators"]
"acme.checked" = "acme_checked:Checked"
"""

CODE = """\
from typing import ClassVar

from symphony_core import Config, Extension


class Settings(Config):
    factor: int = 2


class Checked(Extension):
    kind: ClassVar[str] = "operator"


NOT_A_CLASS = 3
"""

MANIFEST = """\
id = "acme.checked"
kind = "operator"
name = "Checked"
summary = "Exists to be validated."
targets = "symphony-operators>=0.1,<0.2"
config = "acme_checked:Settings"
"""


def write_project(
    root: Path, *, manifest: str = MANIFEST, code: str = CODE, dependencies: str = '"symphony-operators>=0.1"'
) -> Path:
    """An operator project in ``root``: pyproject.toml, src/acme_checked/{__init__.py, symphony.toml}."""
    package = root / "src" / "acme_checked"
    package.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT.format(dependencies=dependencies))
    (package / "__init__.py").write_text(code)
    (package / "symphony.toml").write_text(manifest)
    return root


def findings(report):
    return {(f.check, f.severity, f.file, f.line, f.field) for f in report.findings}


def test_a_project_that_only_imports_the_core_has_that_one_error(tmp_path):
    report = validate(write_project(tmp_path))

    assert report.extensions == ["acme.checked"]
    assert (report.distribution, report.version) == ("acme-checked", "1.2.0")
    assert findings(report) == {("imports", "error", "src/acme_checked/__init__.py", 3, None)}
    assert "Symphony's private core" in report.errors[0].message
    assert "symphony_operators" in report.errors[0].hint
    assert report.as_json()["checks"] == {
        "metadata": "passed",
        "manifest": "passed",
        "permissions": "passed",
        "entry-points": "passed",
        "imports": "failed",
        "dependencies": "passed",
    }


def test_permissions_without_a_real_reason_or_with_bad_scopes_are_named_by_line_and_field(tmp_path):
    manifest = MANIFEST + textwrap.dedent(
        """
        [[permissions]]
        type = "fs.read"
        paths = ["{data}/*.csv", "{tmp}/x"]
        reason = "TODO: say why"

        [[permissions]]
        type = "net.connect"
        hosts = ["api.example.com:443", "example.com"]
        reason = "Fetches the exchange rates."

        [[permissions]]
        type = "env"
        names = ["RATES_TOKEN"]
        reason = "no"
        """
    )
    report = validate(write_project(tmp_path, manifest=manifest))

    manifest_file = "src/acme_checked/symphony.toml"
    assert {f for f in findings(report) if f[0] == "permissions"} == {
        ("permissions", "error", manifest_file, 11, "permissions[0].reason"),
        ("permissions", "error", manifest_file, 10, "permissions[0].paths[1]"),
        ("permissions", "error", manifest_file, 15, "permissions[1].hosts[1]"),
        ("permissions", "error", manifest_file, 21, "permissions[2].reason"),
    }
    messages = {f.field: f.message for f in report.findings}
    assert messages["permissions[0].reason"] == "the reason 'TODO: say why' is a placeholder"
    assert messages["permissions[0].paths[1]"] == "'{tmp}/x' uses the unknown variable {tmp}"
    assert messages["permissions[1].hosts[1]"] == "'example.com' is not a host:port pair"


def test_a_path_that_climbs_out_of_its_folder_is_an_error_on_its_line_with_what_to_do(tmp_path):
    manifest = MANIFEST + textwrap.dedent(
        """
        [[permissions]]
        type = "fs.write"
        paths = ["{data}/../../.."]
        reason = "Keeps its results."
        """
    )
    report = validate(write_project(tmp_path, manifest=manifest))

    (climbs,) = [f for f in report.findings if f.check == "permissions"]
    assert (climbs.severity, climbs.line, climbs.field) == ("error", 10, "permissions[0].paths[0]")
    assert climbs.message == (
        "'{data}/../../..' has a '..' part, which leaves the folder before it: name the folder itself"
    )
    assert climbs.hint == (
        "start each path with {data}, {cache}, {home} or /, and name folders without '.' or '..'"
    )


def test_manifest_mistakes_point_at_the_line_to_fix(tmp_path):
    manifest = MANIFEST.replace('id = "acme.checked"', 'id = "acme.other"').replace(
        'summary = "Exists to be validated."', 'summary = ""'
    )
    report = validate(write_project(tmp_path, manifest=manifest))
    broken = validate(write_project(tmp_path / "kind", manifest=MANIFEST.replace('"operator"', '"motif"')))

    assert ("manifest", "error", "src/acme_checked/symphony.toml", 4, "summary") in findings(report)
    (kind,) = broken.errors[:1]
    assert (kind.line, kind.field) == (5, "targets")
    assert kind.message == "a motif targets 'symphony-motifs', not 'symphony-operators'"


def test_entry_points_and_config_models_are_imported_in_another_process_and_checked(tmp_path):
    pointing_at = {
        "NOT_A_CLASS": "is 3, not an extension class",
        "Missing": "cannot be imported: AttributeError",
    }
    for attr, says in pointing_at.items():
        project = write_project(tmp_path / attr)
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace("acme_checked:Checked", f"acme_checked:{attr}"))

        report = validate(project)

        (error,) = [f for f in report.errors if f.check == "entry-points"]
        assert (error.file, error.line) == ("pyproject.toml", 11)
        assert says in error.message
    config = validate(write_project(tmp_path / "config", manifest=MANIFEST.replace(":Settings", ":Nothing")))
    (error,) = [f for f in config.errors if f.check == "entry-points"]
    assert (error.file, error.line, error.field) == ("src/acme_checked/symphony.toml", 6, "config")
    assert "the config model 'acme_checked:Nothing' does not load" in error.message


def test_code_that_ends_the_interpreter_on_import_is_reported_not_obeyed(tmp_path):
    report = validate(write_project(tmp_path, code="import os\n\nos._exit(3)\n"))

    (error,) = [f for f in report.errors if f.check == "entry-points"]
    assert "importing the extension ended the Python process" in error.message


def test_dependencies_must_cover_what_the_extension_imports(tmp_path):
    code = CODE + "\nimport pydantic\nimport pydantic_core\nimport acme_unheard_of\n"
    report = validate(
        write_project(tmp_path, code=code, dependencies='"symphony-operators", "pydantic>=2.7"')
    )

    by_message = {f.message: f for f in report.findings if f.check == "dependencies"}
    unheard = (
        "imports acme_unheard_of, which no declared dependency provides and no installed distribution has"
    )
    indirect = "imports pydantic_core, which comes only indirectly, as a dependency of a declared dependency"
    assert set(by_message) == {"the dependency 'symphony-operators' has no lower bound", unheard, indirect}
    assert (by_message[unheard].severity, by_message[unheard].line) == ("error", 18)
    assert (by_message[indirect].severity, by_message[indirect].line) == ("warning", 17)
    assert by_message[indirect].hint == "declare pydantic-core in the dependencies, with a lower bound"
    assert by_message["the dependency 'symphony-operators' has no lower bound"].severity == "warning"


def test_a_missing_kit_dependency_is_an_error_on_the_dependencies_line(tmp_path):
    report = validate(write_project(tmp_path, dependencies=""))

    (error,) = [f for f in report.errors if f.check == "dependencies"]
    assert (error.file, error.line, error.field) == ("pyproject.toml", 8, "project.dependencies")
    assert error.message == "an operator needs symphony-operators, which is not a declared dependency"


def test_a_wheel_that_left_out_its_manifest_or_an_asset_is_refused(venv, make, tmp_path):
    code = "from symphony_core import Extension\n\nclass Ext(Extension):\n    kind = 'operator'\n"
    page = make.manifest("acme.pages", extra='[contributes]\npage = "web/index.html"\n')
    without_manifest = venv.build(
        make.Project(
            "acme-bare",
            {"acme_bare/__init__.py": code, "acme_bare/symphony.toml": make.manifest("acme.bare")},
            {"acme.bare": "acme_bare:Ext"},
            backend="setuptools",
            package_data=False,
        ),
        tmp_path,
    )
    without_page = venv.build(
        make.Project(
            "acme-pages",
            {"acme_pages/__init__.py": code, "acme_pages/symphony.toml": page},
            {"acme.pages": "acme_pages:Ext"},
        ),
        tmp_path,
    )

    bare = validate(without_manifest)
    pages = validate(without_page)

    (missing,) = [f for f in bare.errors if f.check == "manifest"]
    assert missing.file == f"{without_manifest.name}!acme_bare"
    assert missing.message == "no symphony.toml beside module 'acme_bare' or in a package above it"
    assert "the wheel left it out: include it in the build (package data)" in missing.hint
    (asset,) = [f for f in pages.errors if f.check == "manifest"]
    assert (asset.file, asset.line, asset.field) == (
        f"{without_page.name}!acme_pages/symphony.toml",
        7,
        "contributes.page",
    )
    assert asset.message == "contributes.page names 'web/index.html', which is not in the wheel"


def test_a_wheel_with_a_compiled_module_is_imported_from_its_contents(tmp_path):
    import _json
    import zipfile

    code = "from symphony_core import Extension\n\nfrom ._json import make_scanner\n\n\nclass Ext(Extension):\n    kind = 'operator'\n"
    manifest = MANIFEST.replace("acme.checked", "acme.native").replace(
        'config = "acme_checked:Settings"\n', ""
    )
    wheel = tmp_path / "acme_native-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("acme_native/__init__.py", code)
        archive.writestr("acme_native/symphony.toml", manifest)
        archive.write(_json.__file__, f"acme_native/{Path(_json.__file__).name}")
        archive.writestr(
            "acme_native-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: acme-native\nVersion: 1.0\nRequires-Dist: symphony-operators>=0.1\n",
        )
        archive.writestr(
            "acme_native-1.0.dist-info/entry_points.txt",
            "[symphony.operators]\nacme.native = acme_native:Ext\n",
        )

    report = validate(wheel)

    assert report.extensions == ["acme.native"]
    assert report.outcome("entry-points") == "passed", report.findings
    assert [f.message for f in report.errors] == ["imports symphony_core, Symphony's private core"]


def test_the_command_prints_each_problem_and_exits_1_or_2(venv, make, tmp_path):
    project = write_project(tmp_path / "project")
    symphony = venv.root / "bin" / "symphony"

    shown = venv.run(symphony, "validate", project, check=False)
    as_json = venv.run(symphony, "validate", project, "--json", check=False)
    nothing = venv.run(symphony, "validate", tmp_path, check=False)
    missing = venv.run(symphony, "validate", tmp_path / "nowhere", check=False)

    assert shown.returncode == 1
    text = make.normalize(shown.stdout)
    assert (
        "error [imports] src/acme_checked/__init__.py:3: imports symphony_core, Symphony's private core"
        in text
    )
    assert "what to do: import what you need from your kit's package" in text
    assert "invalid: 1 error(s), 0 warning(s)" in text
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["valid"] is False
    assert data["findings"][0]["line"] == 3
    assert nothing.returncode == 2
    assert "neither a project folder with a pyproject.toml nor a .whl file" in make.normalize(nothing.stderr)
    assert missing.returncode == 2


def test_a_folder_without_a_project_table_is_a_bad_target(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.other]\nx = 1\n")

    with pytest.raises(BadTarget, match=r"has no \[project\] table"):
        validate(tmp_path)


# One rule set: what `symphony validate` refuses in a permission, discovery refuses too.
PERMISSION_CASES = {
    "acme.perm-ok": (
        'type = "fs.read"\npaths = ["{data}", "/usr/share/dict"]\nreason = "Reads its word lists."',
        None,
    ),
    "acme.perm-todo": ('type = "fs.read"\npaths = ["{data}"]\nreason = "TODO: say why"', "is a placeholder"),
    "acme.perm-dots": ('type = "env"\nnames = ["HOME"]\nreason = "..."', "is a placeholder"),
    "acme.perm-port": (
        'type = "net.connect"\nhosts = ["example.com"]\nreason = "Fetches rates."',
        "host:port",
    ),
    "acme.perm-var": (
        'type = "fs.write"\npaths = ["{tmp}/x"]\nreason = "Keeps results."',
        "unknown variable",
    ),
    "acme.perm-rel": ('type = "fs.read"\npaths = ["data/x"]\nreason = "Reads its input."', "is not absolute"),
    "acme.perm-up": ('type = "fs.write"\npaths = ["{data}/.."]\nreason = "Keeps results."', "'..' part"),
}


def test_discovery_refuses_every_permission_that_validate_refuses_and_no_other(venv, make, tmp_path):
    code = "from symphony_core import Extension\n\n\nclass Ext(Extension):\n    pass\n"
    files, entry_points = {}, {}
    for ext_id, (permission, _) in PERMISSION_CASES.items():
        module = ext_id.replace(".", "_").replace("-", "_")
        files[f"{module}/__init__.py"] = code
        files[f"{module}/symphony.toml"] = make.manifest(ext_id, extra=f"\n[[permissions]]\n{permission}\n")
        entry_points[ext_id] = f"{module}:Ext"
    project = make.Project("acme-permission-cases", files, entry_points)

    report = validate(project.write(tmp_path))
    venv.install(tmp_path / "built", project)
    try:
        listed = make.by_id(venv.symphony_json(tmp_path / "home", "list"))
    finally:
        venv.uninstall(project.name)

    for ext_id, (_, refused) in PERMISSION_CASES.items():
        module = ext_id.replace(".", "_").replace("-", "_")
        said = [f.message for f in report.findings if f.check == "permissions" and module in (f.file or "")]
        problem = listed[ext_id]["problem"]
        if refused is None:
            assert said == [], ext_id
            assert problem is None, (ext_id, problem)
            continue
        assert len(said) == 1, (ext_id, said)
        assert refused in said[0], (ext_id, said)
        assert listed[ext_id]["state"] == "failed", ext_id
        assert refused in problem["message"], (ext_id, problem)
