"""Independent releases, driven through `python -m release` in throwaway clones of this repository.

Each test clones the repository into tmp_path and first resets the clone to a known baseline (every
distribution at 0.1.0, never released, no fragments), so the assertions do not depend on where the real
checkout's versions and tags stand. The release tools run from this checkout's tools/ with the packages
the `release` hatch env declares, installed once per session into their own venv.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- towncrier release notes start -->"
PUBLIC = ("symphony-instruments", "symphony-motifs", "symphony-operators")
if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


IMPORT_TEST = """from importlib.metadata import version

import symphony_operators


def test_the_package_imports_beside_the_core_it_got():
    assert symphony_operators.Operator
    assert version("symphony-sdk-core")
"""


@pytest.fixture(scope="session")
def tools_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Create a venv holding what `hatch run release:...` has, and return its interpreter."""
    from uv import find_uv_bin

    venv = tmp_path_factory.mktemp("release-tools") / "venv"
    requirements = tomllib.loads((ROOT / "hatch.toml").read_text())["envs"]["release"]["dependencies"]
    uv = [find_uv_bin(), "--no-config"]
    subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, venv], check=True)
    subprocess.run([*uv, "pip", "install", "--quiet", "--python", venv, *requirements], check=True)
    return venv / "bin" / "python"


def git(repo: Path, *args: str) -> str:
    """Run git in the clone and return its stdout."""
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def write(repo: Path, relpath: str, text: str) -> None:
    """Write one file of the clone."""
    path = repo / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def commit(repo: Path, message: str) -> None:
    """Commit everything in the clone (a throwaway: adding all is fine here)."""
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Clone this repository and reset the clone to the baseline: all at 0.1.0, never released."""
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    git(clone, "config", "user.name", "Release Test")
    git(clone, "config", "user.email", "release-test@example.invalid")
    for tag in git(clone, "tag", "--list").split():
        git(clone, "tag", "-d", tag)
    for pyproject in clone.glob("packages/*/pyproject.toml"):
        text = re.sub(r'^version = "[^"]*"$', 'version = "0.1.0"', pyproject.read_text(), count=1, flags=re.M)
        pyproject.write_text(
            re.sub(r'"symphony-sdk-core[<>=!~][^"]*"', '"symphony-sdk-core>=0.1,<0.2"', text)
        )
    for init in clone.glob("packages/*/src/*/__init__.py"):
        init.write_text(
            re.sub(r'^__version__ = "[^"]*"$', '__version__ = "0.1.0"', init.read_text(), flags=re.M)
        )
    for pyproject in clone.glob("examples/*/pyproject.toml"):
        text = pyproject.read_text()
        pyproject.write_text(
            re.sub(r'"(symphony-(?:instruments|operators|motifs))[<>=!~][^"]*"', r'"\1>=0.1,<0.2"', text)
        )
    for changelog in clone.glob("packages/*/CHANGELOG.md"):
        text = changelog.read_text()
        changelog.write_text(text[: text.index(MARKER) + len(MARKER)] + "\n")
    for fragment in clone.glob("packages/*/changes/*.md"):
        fragment.unlink()
    commit(clone, "Test baseline: every distribution at 0.1.0, never released")
    return clone


def release(tools_python: Path, repo: Path, *args: str, expect: int = 0) -> str:
    """Run the release command line in the clone and return what it printed."""
    leaky = ("VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in leaky} | {"PYTHONPATH": str(ROOT / "tools")}
    proc = subprocess.run(
        [tools_python, "-m", "release", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == expect, output
    return output


def read_plan(tools_python: Path, repo: Path, *args: str) -> dict[str, dict[str, object]]:
    """Return the release plan of the clone, keyed by distribution, with range updates under `ranges`."""
    data = json.loads(release(tools_python, repo, "plan", "--json", *args))
    by_name: dict[str, dict[str, object]] = {r["distribution"]: r for r in data["releases"]}
    by_name["ranges"] = {u["file"]: u["new"] for u in data["range_updates"]}
    return by_name


@pytest.fixture
def released(tools_python: Path, repo: Path) -> Path:
    """The baseline clone after its first release: every distribution tagged at 0.1.0."""
    release(tools_python, repo, "apply")
    return repo


def test_packages_never_released_are_planned_at_their_current_version(tools_python, repo):
    planned = read_plan(tools_python, repo)

    for name in ("symphony-sdk-core", *PUBLIC):
        assert planned[name]["next"] == "0.1.0"
        assert planned[name]["bump"] == "first"
    assert planned["ranges"] == {}


def test_the_first_release_tags_each_distribution_and_writes_its_changelog(tools_python, repo):
    write(
        repo, "packages/symphony-operators/changes/lazy-pipelines.feature.md", "Operators compose lazily.\n"
    )
    commit(repo, "Operators: lazy pipelines")

    output = release(tools_python, repo, "apply")

    tags = set(git(repo, "tag", "--list").split())
    assert tags == {f"{name}-v0.1.0" for name in ("symphony-sdk-core", *PUBLIC)}
    assert "push with: git push origin HEAD" in output
    changelog = (repo / "packages/symphony-operators/CHANGELOG.md").read_text()
    assert re.search(
        r"## 0\.1\.0 \(\d{4}-\d\d-\d\d\)\n\n### Features\n\n- Operators compose lazily\.\n", changelog
    )
    assert not (repo / "packages/symphony-operators/changes/lazy-pipelines.feature.md").exists()
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "log", "-1", "--format=%s").startswith("Release symphony-sdk-core 0.1.0")


def test_a_changelog_that_already_has_the_version_stops_the_release(tools_python, repo):
    changelog = repo / "packages/symphony-motifs/CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "\n## 0.1.0 (unreleased)\n\n- First release.\n")
    commit(repo, "A hand-written section for the coming version")

    output = release(tools_python, repo, "apply", expect=2)

    assert "symphony-motifs/CHANGELOG.md already has a section for 0.1.0" in output
    assert git(repo, "tag", "--list") == ""


def test_a_core_breaking_change_bumps_its_minor_and_moves_every_public_range(tools_python, released):
    write(
        released, "packages/symphony-core/changes/drop-legacy-hooks.breaking.md", "Legacy hooks are gone.\n"
    )
    commit(released, "Core: drop legacy hooks")

    planned = read_plan(tools_python, released)

    assert (planned["symphony-sdk-core"]["next"], planned["symphony-sdk-core"]["bump"]) == ("0.2.0", "minor")
    for name in PUBLIC:
        assert planned[name]["next"] == "0.1.1"
        assert planned[name]["reasons"] == [
            "its symphony-sdk-core range moves to symphony-sdk-core>=0.2,<0.3"
        ]
    folders = {"symphony-instruments", "symphony-motifs", "symphony-operators"}
    assert planned["ranges"] == {
        **{f"packages/{f}/pyproject.toml": "symphony-sdk-core>=0.2,<0.3" for f in folders},
        # the demo is a host: it depends on the core itself, and its range moves too
        "examples/demo/pyproject.toml": "symphony-sdk-core>=0.2,<0.3",
    }
    table = release(tools_python, released, "plan")
    assert re.search(r"symphony-sdk-core\s+0\.1\.0\s+0\.2\.0\s+minor\s+breaking: drop-legacy-hooks", table)

    release(tools_python, released, "apply")

    for name in PUBLIC:
        assert f"{name}-v0.1.1" in git(released, "tag", "--list")
    assert "symphony-sdk-core-v0.2.0" in git(released, "tag", "--list")
    instruments = released / "packages/symphony-instruments"
    assert '"symphony-sdk-core>=0.2,<0.3"' in (instruments / "pyproject.toml").read_text()
    assert (
        "Requires `symphony-sdk-core>=0.2,<0.3` (symphony-sdk-core 0.2.0)."
        in (instruments / "CHANGELOG.md").read_text()
    )
    core_init = (released / "packages/symphony-core/src/symphony_core/__init__.py").read_text()
    assert '__version__ = "0.2.0"' in core_init
    assert 'version = "0.2.0"' in (released / "packages/symphony-core/pyproject.toml").read_text()
    cells = release(tools_python, released, "matrix", "--list")
    # the public packages' releases moved their range with the core, so they are tested against it
    assert re.search(r"core-with-operators-release .+-v0\.1\.1\)\s+0\.2\.0 \(workspace\)", cells)


def test_features_bump_the_patch_while_0x_and_the_minor_from_1_0(tools_python, released):
    write(released, "packages/symphony-operators/changes/joins.feature.md", "Operators can join frames.\n")
    write(released, "packages/symphony-instruments/changes/batch-size.fix.md", "Batches respect max size.\n")
    commit(released, "Operators join; instruments fix")

    planned = read_plan(tools_python, released)
    assert planned["symphony-operators"]["next"] == "0.1.1"
    assert planned["symphony-instruments"]["next"] == "0.1.1"
    assert "symphony-sdk-core" not in planned

    release(tools_python, released, "apply", "--set", "symphony-operators=1.0.0")
    example = (released / "examples/route-delays/pyproject.toml").read_text()
    assert '"symphony-operators>=1.0,<2"' in example
    write(released, "packages/symphony-operators/changes/windows.feature.md", "Operators over windows.\n")
    commit(released, "Operators: windows")

    assert read_plan(tools_python, released)["symphony-operators"]["next"] == "1.1.0"


def test_apply_refuses_a_dirty_tree_a_local_version_and_an_existing_tag(tools_python, released):
    write(released, "packages/symphony-operators/changes/joins.feature.md", "Operators can join frames.\n")
    head = git(released, "rev-parse", "HEAD")

    assert "the work tree is not clean" in release(tools_python, released, "apply", expect=2)

    commit(released, "Operators join")
    head = git(released, "rev-parse", "HEAD")
    local = release(tools_python, released, "apply", "--set", "symphony-operators=0.1.1+local", expect=2)
    assert "0.1.1+local is a local version" in local

    git(released, "tag", "symphony-operators-v0.1.1")
    assert "tag symphony-operators-v0.1.1 already exists" in release(
        tools_python, released, "apply", expect=2
    )

    assert git(released, "rev-parse", "HEAD") == head
    assert git(released, "status", "--porcelain") == ""


def test_a_fragment_with_an_unknown_type_is_refused(tools_python, repo):
    write(repo, "packages/symphony-motifs/changes/new-widget.feat.md", "A widget.\n")
    commit(repo, "Motifs: a widget")

    output = release(tools_python, repo, "fragments", expect=2)

    assert "new-widget.feat.md" in output
    assert "breaking, feature, fix, docs, misc" in output


def test_a_src_change_without_a_fragment_fails_until_one_is_added(tools_python, released):
    operator = released / "packages/symphony-operators/src/symphony_operators/_operator.py"
    operator.write_text(operator.read_text() + "\n\nSTRICT_SCHEMAS = True\n")
    commit(released, "Operators: strict schemas")
    subject = git(released, "log", "-1", "--format=%h Operators: strict schemas")

    output = release(tools_python, released, "fragments", expect=1)

    assert "symphony-operators: compared with last release tag symphony-operators-v0.1.0" in output
    assert f"commit {subject}" in output
    assert (
        "symphony-sdk-core: compared with last release tag symphony-sdk-core-v0.1.0: src/ unchanged, PASS"
        in output
    )

    write(released, "packages/symphony-operators/changes/strict-schemas.feature.md", "Schemas are strict.\n")
    commit(released, "Operators: note strict schemas")
    assert "strict-schemas.feature.md, PASS" in release(tools_python, released, "fragments")


def test_internal_changes_pass_with_the_commit_trailer(tools_python, released):
    instrument = released / "packages/symphony-instruments/src/symphony_instruments/_instrument.py"
    instrument.write_text(instrument.read_text() + "\n\n_INTERNAL_BUFFER = 64\n")
    commit(released, "Instruments: tune a private buffer\n\nChangelog: internal")

    assert "marked `Changelog: internal`, PASS" in release(tools_python, released, "fragments")


def test_without_a_tag_the_fragment_check_compares_with_the_merge_base(tools_python, repo):
    git(repo, "switch", "--quiet", "-c", "motifs-work")
    motif = next((repo / "packages/symphony-motifs/src/symphony_motifs").glob("_motif.py"))
    motif.write_text(motif.read_text() + "\n\nDEFAULT_THEME = 'light'\n")
    commit(repo, "Motifs: default theme")

    failed = release(tools_python, repo, "fragments", "--against", "main", expect=1)
    assert "symphony-motifs: compared with no release tag: merge base with main: src/ changed" in failed

    write(repo, "packages/symphony-motifs/changes/theme.feature.md", "A default theme.\n")
    commit(repo, "Motifs: note the theme")
    release(tools_python, repo, "fragments", "--against", "main")


def test_the_api_gate_without_a_tag_says_so_and_passes(tools_python, repo):
    output = release(tools_python, repo, "api")

    assert "symphony-operators: no release tag yet, nothing to compare: PASS" in output


def test_the_api_gate_names_a_removed_public_function_until_a_breaking_fragment_announces_it(
    tools_python, repo
):
    init = repo / "packages/symphony-operators/src/symphony_operators/__init__.py"
    original = init.read_text()
    function = 'def describe_pipeline() -> str:\n    """Describe the pipeline."""\n    return ""\n'
    init.write_text(
        original.replace("__all__ = [", '__all__ = [\n    "describe_pipeline",') + f"\n\n{function}"
    )
    commit(repo, "Operators: describe_pipeline")
    release(tools_python, repo, "apply")
    assert "symphony-operators: public API compatible with symphony-operators-v0.1.0: PASS" in release(
        tools_python, repo, "api"
    )

    init.write_text(original)
    commit(repo, "Operators: drop describe_pipeline")
    failed = release(tools_python, repo, "api", expect=1)
    assert "symphony-operators: breaks describe_pipeline since symphony-operators-v0.1.0" in failed
    assert "describe_pipeline: Public object was removed" in failed

    write(repo, "packages/symphony-operators/changes/no-describe.breaking.md", "describe_pipeline is gone.\n")
    commit(repo, "Operators: announce the break")
    passed = release(tools_python, repo, "api")
    assert "announced by no-describe.breaking.md: PASS" in passed
    assert read_plan(tools_python, repo)["symphony-operators"]["next"] == "0.2.0"


def test_a_dependency_without_a_lower_bound_is_reported(tools_python, repo):
    release(tools_python, repo, "bounds")
    pyproject = repo / "packages/symphony-operators/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"polars>=2.0"', '"polars"'))
    commit(repo, "Operators: unbounded polars")

    output = release(tools_python, repo, "bounds", expect=1)

    assert "packages/symphony-operators/pyproject.toml: 'polars' has no lower bound" in output


@pytest.mark.slow
def test_artifacts_are_reproducible_and_a_wheel_without_py_typed_fails(tools_python, repo):
    assert "artifacts: PASS" in release(tools_python, repo, "artifacts")

    git(repo, "rm", "--quiet", "packages/symphony-motifs/src/symphony_motifs/py.typed")
    commit(repo, "Motifs: lose py.typed")
    output = release(tools_python, repo, "artifacts", expect=1)

    assert "symphony_motifs-0.1.0-py3-none-any.whl lacks symphony_motifs/py.typed" in output


@pytest.mark.slow
def test_the_oldest_admitted_core_is_built_from_its_release_tag(tools_python, repo):
    # The package's own suite is the matrix's business in CI; here one import test keeps the cells about
    # which core and which polars they installed.
    for test in (repo / "packages/symphony-operators/tests").iterdir():
        test.unlink()
    write(repo, "packages/symphony-operators/tests/test_import.py", IMPORT_TEST)
    commit(repo, "Operators: one import test")
    release(tools_python, repo, "apply")
    released = repo
    write(released, "packages/symphony-core/changes/faster-discovery.fix.md", "Discovery is faster.\n")
    commit(released, "Core: faster discovery")
    release(tools_python, released, "apply")

    cells = release(tools_python, released, "matrix", "--list")
    assert re.search(
        r"operators-oldest-core .+ 0\.1\.0 \(symphony-sdk-core-v0\.1\.0\)\s+lowest-direct", cells
    )
    assert re.search(r"operators-newest-core .+ 0\.1\.1 \(workspace\)\s+highest", cells)

    output = release(
        tools_python,
        released,
        "matrix",
        "--cell",
        "operators-oldest-core",
        "--cell",
        "core-with-operators-release",
    )
    assert re.search(r"operators-oldest-core .+ lowest-direct\s+PASS .+ polars 2\.0\.0", output)
    assert re.search(
        r"core-with-operators-release\s+symphony-operators \(symphony-operators-v0\.1\.0\) .+ PASS", output
    )
