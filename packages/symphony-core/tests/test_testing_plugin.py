"""The pytest plugin as an extension author uses it: pytest run inside the test environment, on a test
file that asks for the ``symphony_host`` fixture, against an extension installed there."""

from __future__ import annotations

import textwrap

import pytest

from symphony_core._security._sandbox._probe import probe

EXT = "acme.plugged"
LANDLOCK = probe().has("landlock")

CODE = """
from pathlib import Path

from symphony_core import Config, Extension


class Settings(Config):
    greeting: str = "hello"
    times: int = 1


class Ext(Extension):
    def activate(self, context):
        super().activate(context)
        (context.data_dir / "seen.txt").write_text("activated")

    def greet(self, name):
        return " ".join([f"{self.context.config.greeting} {name}"] * self.context.config.times)

    def seen(self):
        return (self.context.data_dir / "seen.txt").read_text()

    def peek(self, path):
        try:
            return Path(path).read_text()
        except PermissionError as exc:  # a careless extension hides the guard's refusal
            return f"hidden: {exc}"
"""

PERMISSIONS = """
config = "acme_plugged:Settings"

[[permissions]]
type = "fs.write"
paths = ["{data}/*"]
reason = "Remembers that it was activated."

[[permissions]]
type = "fs.read"
paths = ["{data}/*"]
reason = "Reads back what it remembered."
"""


@pytest.fixture(scope="module")
def pytest_in_venv(venv):
    """The session's environment with pytest installed, as an author's environment has it."""
    venv.run(venv.uv, "pip", "install", "--quiet", "--python", venv.python, "pytest>=8.3")
    return venv


@pytest.fixture(scope="module", autouse=True)
def installed(pytest_in_venv, make, tmp_path_factory):
    project = make.extension(EXT, code=CODE, manifest_text=make.manifest(EXT, extra=PERMISSIONS))
    pytest_in_venv.install(tmp_path_factory.mktemp("plugged"), project)
    yield
    pytest_in_venv.uninstall(project.name)


def run_pytest(venv, folder, test_code, *args):
    """Write ``test_code`` as a test file in ``folder`` and run the environment's pytest on it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_author.py").write_text(textwrap.dedent(test_code), encoding="utf-8")
    return venv.run(
        venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", *args, folder, check=False
    )


def test_a_test_starts_configures_and_calls_an_installed_extension_in_its_own_home(pytest_in_venv, tmp_path):
    result = run_pytest(
        pytest_in_venv,
        tmp_path / "author",
        f"""
        import os

        def test_it(symphony_host, symphony_home):
            assert os.environ["SYMPHONY_HOME"] == str(symphony_home)
            symphony_host.start("{EXT}", greeting="hi", times=2)

            assert symphony_host.call("{EXT}", "greet", "ada") == "hi ada hi ada"
            assert symphony_host.call("{EXT}", "seen") == "activated"
            assert (symphony_host.data_dir("{EXT.upper()}") / "seen.txt").read_text() == "activated"
            assert symphony_host.config("{EXT}").times == 2
            symphony_host.assert_within_permissions("{EXT}")
        """,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_an_access_outside_the_grant_fails_the_assertion_even_when_the_extension_hides_it(
    pytest_in_venv, tmp_path
):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    result = run_pytest(
        pytest_in_venv,
        tmp_path / "author",
        f"""
        def test_it(symphony_host):
            symphony_host.start("{EXT}")
            assert symphony_host.call("{EXT}", "peek", {str(secret)!r}).startswith("hidden:")
            assert [e.permission for e in symphony_host.denials("{EXT.upper()}")] == ["fs.read"]
            symphony_host.assert_within_permissions("{EXT}")
        """,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "AssertionError: acme.plugged used what it was not granted:" in result.stdout
    assert f"fs.read {secret}" in result.stdout


def test_a_denied_extension_does_not_start_and_bad_config_names_the_field(pytest_in_venv, tmp_path):
    result = run_pytest(
        pytest_in_venv,
        tmp_path / "author",
        f"""
        import pytest
        from symphony_core import ConfigError, ConsentRequired

        def test_denied(symphony_host):
            symphony_host.grant("{EXT}")
            symphony_host.deny("{EXT}")
            with pytest.raises(ConsentRequired, match="needs consent"):
                symphony_host.start("{EXT}", grant=False)

        def test_bad_config(symphony_host):
            with pytest.raises(ConfigError, match="times"):
                symphony_host.configure("{EXT}", times="many")

        def test_unknown(symphony_host):
            symphony_host.start("acme.absent")
        """,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed" in result.stdout
    assert "no installed extension has the id 'acme.absent'" in result.stdout
    assert "pip install -e ." in result.stdout


def test_learning_proposes_the_permissions_the_extension_used(pytest_in_venv, tmp_path):
    secret = tmp_path / "notes" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("s3cret")
    result = run_pytest(
        pytest_in_venv,
        tmp_path / "author",
        f"""
        def test_it(symphony_host):
            with symphony_host.learning("{EXT}") as recorder:
                symphony_host.start("{EXT}", grant=False)
                assert symphony_host.call("{EXT}", "peek", {str(secret)!r}) == "s3cret"

            proposal = {{p["type"]: p["paths"] for p in recorder.proposal()}}
            assert proposal == {{"fs.write": ["{{data}}"], "fs.read": [{str(secret.parent)!r}]}}, proposal
            assert symphony_host.denials() == []
        """,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not LANDLOCK, reason="the isolated tier is tested where the kernel has Landlock")
def test_a_test_marked_isolated_runs_the_extension_in_workers_the_kernel_restricts(pytest_in_venv, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    result = run_pytest(
        pytest_in_venv,
        tmp_path / "author",
        f"""
        import pytest
        from symphony_core import LifecycleError

        @pytest.mark.symphony_isolation("isolated")
        def test_isolated(symphony_host):
            symphony_host.start("{EXT}", greeting="hi", times=2)

            assert symphony_host.inspect("{EXT}").tier == "isolated"
            assert symphony_host.call("{EXT}", "greet", "ada") == "hi ada hi ada"
            assert symphony_host.call("{EXT}", "seen") == "activated"
            assert symphony_host.config("{EXT}") == {{"greeting": "hi", "times": 2}}
            # The kernel refuses it in the worker: the extension sees PermissionError, no guard records it.
            assert symphony_host.call("{EXT}", "peek", {str(secret)!r}).startswith("hidden: [Errno 13]")
            assert symphony_host.denials() == []
            with pytest.raises(LifecycleError, match="learning mode"):
                with symphony_host.learning("{EXT}"):
                    pass

        def test_in_process_by_default(symphony_host):
            symphony_host.start("{EXT}")
            assert symphony_host.inspect("{EXT}").tier == "guard"
        """,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


@pytest.mark.skipif(not LANDLOCK, reason="the isolated tier is tested where the kernel has Landlock")
def test_the_option_isolates_every_test_but_those_whose_marker_says_otherwise(pytest_in_venv, tmp_path):
    result = run_pytest(
        pytest_in_venv,
        tmp_path / "author",
        f"""
        import pytest

        def test_unmarked(symphony_host):
            symphony_host.start("{EXT}")
            assert symphony_host.inspect("{EXT}").tier == "isolated"

        @pytest.mark.symphony_isolation("guard")
        def test_marked_guard(symphony_host):
            symphony_host.start("{EXT}")
            assert symphony_host.inspect("{EXT}").tier == "guard"

        @pytest.mark.symphony_isolation("sandboxed")
        def test_misspelt(symphony_host):
            pass
        """,
        "--symphony-isolation=isolated",
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed, 1 error" in result.stdout
    assert "@pytest.mark.symphony_isolation takes one of auto, isolated, guard, none" in result.stdout


def test_the_plugin_is_cheap_to_load_and_leaves_other_tests_alone(pytest_in_venv, tmp_path):
    imported = pytest_in_venv.run(
        pytest_in_venv.python,
        "-c",
        "import sys, symphony_core._authoring._testing; "
        "print(sorted(m for m in sys.modules if m.startswith(('symphony_core.', 'pydantic', 'msgspec'))))",
    )
    plain = run_pytest(pytest_in_venv, tmp_path / "plain", "def test_plain(tmp_path):\n    assert tmp_path\n")
    fixtures = pytest_in_venv.run(pytest_in_venv.python, "-m", "pytest", "--fixtures", tmp_path / "plain")
    disabled = pytest_in_venv.run(
        pytest_in_venv.python, "-m", "pytest", "-p", "no:symphony", "--fixtures", tmp_path / "plain"
    )

    # The plugin, the errors module and what makes exported names public, with their layers' packages
    # (each a docstring only).
    assert imported.stdout.strip() == str(
        [
            "symphony_core._authoring",
            "symphony_core._authoring._testing",
            "symphony_core._model",
            "symphony_core._model._errors",
            "symphony_core._model._public",
        ]
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "symphony_host" in fixtures.stdout
    assert "symphony_home" in fixtures.stdout
    assert "symphony_host" not in disabled.stdout
