"""An author's path with the real kits: ``symphony new``, the generated project's own tests, ``symphony
validate``, a wheel, and a host in another environment that discovers and runs it.

The slow test installs as a user would, into fresh venvs with pip: Symphony's own distributions from
wheels built here (never from the package index, where ``symphony-core`` is someone else's project;
see tests/test_publish.py for why that takes two steps), third-party dependencies from the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CORE = "symphony-sdk-core"
KITS = {"instrument": "symphony-instruments", "motif": "symphony-motifs", "operator": "symphony-operators"}

# Runs in the user's environment: a host starts the installed extension and calls it once.
RUN = {
    "instrument": """
import json, sys
import numpy as np
from symphony_core import Host

with Host(sys.argv[1]) as host:
    host.start(sys.argv[2])
    flowers = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    outputs = host.call(sys.argv[2], "infer", {"features": flowers})
print(json.dumps({"label": outputs["label"].tolist()}))
""",
    "motif": """
import json, sys, urllib.request
from symphony_core import Host
from symphony_motifs import serve

with Host(sys.argv[1]) as host, serve(host, sys.argv[2]) as server:
    page = urllib.request.urlopen(server.url).read().decode()
    call = urllib.request.Request(
        server.url + "_symphony/call/greet",
        data=json.dumps({"args": {"name": "Ada"}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(call) as response:
        answer = json.load(response)
print(json.dumps({"bridge": "_symphony/bridge.js" in page, "answer": answer}))
""",
    "operator": """
import json, sys
import polars as pl
from symphony_core import Host

with Host(sys.argv[1]) as host:
    host.start(sys.argv[2])
    frame = pl.LazyFrame({"key": ["x", "y", "x"], "value": [1.0, 2.0, 4.0]})
    result = host.call(sys.argv[2], "apply", frame).collect()
print(json.dumps(result.to_dicts()))
""",
}
GENERATED_TESTS = {"instrument": 4, "motif": 6, "operator": 3}
EXPECTED = {
    "instrument": {"label": [0, 2]},
    "motif": {"bridge": True, "answer": {"result": "Hello, Ada!"}},
    "operator": [{"key": "x", "rows": 2, "total": 5.0}, {"key": "y", "rows": 1, "total": 2.0}],
}


def symphony(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run this environment's ``symphony`` command."""
    return subprocess.run([BIN / "symphony", *map(str, args)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("kind", sorted(KITS))
def test_a_generated_project_validates_cleanly_before_and_after_it_is_built(kind, tmp_path):
    project = tmp_path / "project"

    created = symphony("new", kind, f"acme-{kind}-check", "--dir", project, "--json")
    checked = symphony("validate", project, "--strict", "--json")

    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["requirement"].startswith(f"{KITS[kind]}>=")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["findings"] == []
    assert report["extensions"] == [f"acme.{kind}-check"]
    assert set(report["checks"].values()) == {"passed"}


@pytest.mark.parametrize("kind", sorted(KITS))
def test_a_generated_project_is_a_whole_project_with_ci_a_changelog_and_a_license(kind, tmp_path):
    project = tmp_path / "project"

    created = symphony(
        "new", kind, f"acme-{kind}-whole", "--dir", project, "--license", "Apache-2.0", "--no-input", "--json"
    )

    assert created.returncode == 0, created.stderr
    files = set(json.loads(created.stdout)["files"])
    assert {
        ".gitignore",
        "CHANGELOG.md",
        "changes/README.md",
        "LICENSE",
        ".github/workflows/test.yml",
    } <= files
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert pyproject["tool"]["towncrier"]["directory"] == "changes"
    assert "Apache License" in (project / "LICENSE").read_text()
    assert "<!-- towncrier release notes start -->" in (project / "CHANGELOG.md").read_text()
    workflow = (project / ".github/workflows/test.yml").read_text()
    pythons = [c.split(":: ")[-1] for c in _classifiers(KITS[kind]) if re.fullmatch(r".*:: 3\.\d+", c)]
    assert f"python: {json.dumps(pythons)}" in workflow
    assert "${{ matrix.python }}" in workflow
    assert "symphony validate --strict ." in workflow
    assert "python -m pytest" in workflow


def _classifiers(distribution: str) -> list[str]:
    """The classifiers in the workspace's pyproject.toml of one of Symphony's distributions."""
    folder = ROOT / "packages" / distribution
    return list(tomllib.loads((folder / "pyproject.toml").read_text())["project"]["classifiers"])


@pytest.mark.slow
def test_the_instrument_projects_build_script_trains_the_model_the_instrument_serves(tmp_path):
    project = tmp_path / "project"
    assert symphony("new", "instrument", "acme-flowers", "--dir", project, "--no-input").returncode == 0
    model = project / "src/acme_flowers/model"
    (model / "model.onnx").unlink()
    (model / "model.sha256").unlink()

    built = subprocess.run(
        [sys.executable, project / "scripts/build_model.py"], capture_output=True, text=True, check=False
    )

    assert built.returncode == 0, built.stderr
    data = (model / "model.onnx").read_bytes()
    recorded = (model / "model.sha256").read_text().split()
    assert recorded == [hashlib.sha256(data).hexdigest(), "model.onnx"]
    import onnxruntime as ort

    session = ort.InferenceSession(data)
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("features", [None, 4])]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]


def pip_env() -> dict[str, str]:
    """An environment in which pip reads no config file and none of this machine's index settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "SYMPHONY_", "PYTEST_")) and key not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    if "PIP_CERT" in os.environ:
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command that must succeed; return its output."""
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env or pip_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def fresh_venv(path: Path) -> Path:
    """A new venv with pip; return its bin folder."""
    run(sys.executable, "-m", "venv", path)
    return path / "bin"


def install_ours_then_the_rest(venv_bin: Path, links: list[Path], *names: str) -> None:
    """Install Symphony's distributions from the local wheels only, then their third-party deps from the index."""
    find_links = [arg for link in links for arg in ("--find-links", str(link))]
    run(
        venv_bin / "python", "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", *find_links, *names
    )
    run(venv_bin / "python", "-m", "pip", "install", "--quiet", *find_links, *names)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the core and of the three kits, built from this workspace."""
    from uv import find_uv_bin

    out = tmp_path_factory.mktemp("wheels")
    for folder in ("symphony-core", "symphony-instruments", "symphony-motifs", "symphony-operators"):
        run(
            find_uv_bin(),
            "--no-config",
            "build",
            "--wheel",
            "--quiet",
            "--out-dir",
            out,
            ROOT / "packages" / folder,
        )
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KITS))
def test_a_generated_project_passes_its_tests_builds_and_runs_in_a_users_host(kind, wheels, tmp_path):
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    ext_id, project, dist = f"acme.{kind}-e2e", tmp_path / "project", tmp_path / "dist"
    dev = fresh_venv(tmp_path / "dev")
    install_ours_then_the_rest(dev, [wheels], KITS[kind])
    lap("author venv with the kit")

    # From nothing to passing tests in two commands: generated and installed, then its tests.
    run(
        dev / "symphony", "new", kind, ext_id, "--dir", project, "--no-input", "--install",
        env=pip_env() | {"PIP_FIND_LINKS": str(wheels)},
    )  # fmt: skip
    lap("generate and install it editable")

    tested = run(dev / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", project)
    lap("its own tests")

    run(dev / "symphony", "validate", project, "--strict")
    run(dev / "python", "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, project)
    (wheel,) = dist.glob("*.whl")
    run(dev / "symphony", "validate", wheel, "--strict")
    lap("validate, build, validate the wheel")

    user = fresh_venv(tmp_path / "user")
    install_ours_then_the_rest(user, [wheels, dist], wheel.name.split("-")[0].replace("_", "-"))
    home = tmp_path / "home"
    listed = json.loads(run(user / "symphony", "--home", home, "list", "--json"))
    answer = json.loads(run(user / "python", "-c", RUN[kind], home, ext_id))
    lap("user venv from the wheel, discovered and run")

    assert tested.strip().splitlines()[-1].startswith(f"{GENERATED_TESTS[kind]} passed")
    (info,) = [info for info in listed if info["id"] == ext_id]
    assert (info["state"], info["distribution"], info["kind"]) == ("validated", f"acme-{kind}-e2e", kind)
    assert info["manifest_file"].startswith(str(tmp_path / "user"))
    assert answer == EXPECTED[kind]
    print(f"\n{kind} end to end, seconds per step: {json.dumps(timings)}")
