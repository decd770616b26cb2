"""The layer rules are enforced by import-linter; these tests keep its configuration complete."""

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _example_packages() -> set[str]:
    return {
        package.name
        for src in ROOT.glob("examples/*/src")
        for package in src.iterdir()
        if (package / "__init__.py").is_file()
    }


def test_every_example_is_checked_by_the_boundary_contracts():
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    roots = set(config["importlinter"]["root_packages"].split())
    extensions = set(config["importlinter:contract:examples-public-only"]["source_modules"].split())
    hosts = set(config["importlinter:contract:example-hosts"]["source_modules"].split())
    checked = extensions | hosts

    examples = _example_packages()

    assert examples, "no example packages found"
    assert examples <= roots, f"add {sorted(examples - roots)} to root_packages in .importlinter"
    assert examples <= checked, (
        f"add {sorted(examples - checked)} to the examples-public-only contract (or, for a host "
        "application, to the example-hosts contract)"
    )
    assert not extensions & hosts, f"{sorted(extensions & hosts)} is in both examples contracts"


def test_no_project_depends_on_the_squatted_core_name():
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    for pyproject in [*ROOT.glob("packages/*/pyproject.toml"), *ROOT.glob("examples/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text())["project"]
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements.extend(extra)
        names = {canonicalize_name(Requirement(line).name) for line in requirements}
        assert "symphony-core" not in names, (
            f"{pyproject} depends on symphony-core, an unrelated PyPI project"
        )
