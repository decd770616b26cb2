"""An instrument distribution installed for real, discovered and run in-process by `symphony_core.Host`.

The distribution is built by its own build backend and installed by uv into a site folder of its own,
with its entry point and manifest; the host finds it there without importing it, then starts it under
the in-process guard. Its code is two lines: the kit's `OnnxInstrument` and a config naming the file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from symphony_core import Host
from symphony_instruments import GuardDenied, InvalidInput

EXTENSION = "acme.digits"

CODE = '''
"""Acme's digit reader: a scikit-learn model served by Symphony, with no code of its own."""

from symphony_instruments import ModelConfig, OnnxInstrument


class DigitsConfig(ModelConfig):
    path: str = "{data}/digits.onnx"


Digits = OnnxInstrument
'''

MANIFEST = """
id = "acme.digits"
kind = "instrument"
name = "Digits"
summary = "Reads handwritten digits from 8x8 images."
targets = "symphony-instruments>=0.1,<0.2"
config = "acme_digits:DigitsConfig"

[[permissions]]
type = "fs.read"
paths = ["{data}/*.onnx"]
reason = "Load the digit model you put in the extension's data folder."

[contributes]
inputs = [{name = "input", dtype = "float32", shape = ["batch", 64]}]
outputs = [
  {name = "label", dtype = "int64", shape = ["batch"]},
  {name = "probabilities", dtype = "float32", shape = ["batch", 10]},
]
"""

PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "acme-digits"
version = "1.0.0"
requires-python = ">=3.10"
dependencies = ["symphony-instruments>=0.1,<0.2"]

[project.entry-points."symphony.instruments"]
"acme.digits" = "acme_digits:Digits"

[tool.hatch.build.targets.wheel]
packages = ["src/acme_digits"]
"""


def _uv() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            pytest.fail("this test needs uv: add `uv` to the test environment")
        return found
    return str(find_uv_bin())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding the installed ``acme-digits`` distribution (and nothing else)."""
    root = tmp_path_factory.mktemp("acme")
    project = root / "acme-digits"
    package = project / "src" / "acme_digits"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(CODE).lstrip(), encoding="utf-8")
    (package / "symphony.toml").write_text(textwrap.dedent(MANIFEST).lstrip(), encoding="utf-8")
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT).lstrip(), encoding="utf-8")
    target = root / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    command = [_uv(), "pip", "install", "--quiet", "--no-deps", "--python", sys.executable]
    subprocess.run([*command, "--target", str(target), str(project)], check=True, env=env, timeout=300)
    entry_points = next(target.glob("acme_digits-1.0.0.dist-info")) / "entry_points.txt"
    assert "acme.digits = acme_digits:Digits" in entry_points.read_text(encoding="utf-8")
    return target


@pytest.fixture
def host(request: pytest.FixtureRequest, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A host as hosts make one (isolation="auto"), or with the isolation a test gives (indirect)."""
    monkeypatch.syspath_prepend(str(site))
    isolation = getattr(request, "param", "auto")
    with Host(tmp_path / "home", path=[str(site), *sys.path], isolation=isolation) as running:
        yield running
    for name in [name for name in sys.modules if name.split(".")[0] == "acme_digits"]:
        del sys.modules[name]


def test_the_host_discovers_starts_and_calls_an_installed_instrument(host, digits):
    found = {info.id: info for info in host.discover()}
    assert found[EXTENSION].state.value == "validated", found[EXTENSION].problem
    assert "acme_digits" not in sys.modules, "discovery imports no extension code"
    data = host.home.data_dir(EXTENSION)  # the person puts the model in the extension's data folder
    data.mkdir(parents=True)
    shutil.copy(digits.path, data / "digits.onnx")
    host.grant(EXTENSION)
    host.start(EXTENSION)

    async def callers():
        answers = await asyncio.gather(
            *(host.acall(EXTENSION, "infer", {"input": row}) for row in digits.features[:100])
        )
        with pytest.raises(InvalidInput, match="input 'input' has dtype float64"):
            await host.acall(EXTENSION, "infer", {"input": digits.features[0].astype(np.float64)})
        return answers

    answers = asyncio.run(callers())
    single = host.call(EXTENSION, "infer", {"input": digits.features[:5].tolist()})
    metrics = host.call(EXTENSION, "metrics")

    expected = digits.estimator.predict(digits.features[:100])
    assert [int(answer["label"]) for answer in answers] == expected.tolist()
    assert single["label"].tolist() == expected[:5].tolist()
    assert (metrics.completed, metrics.invalid) == (101, 1)
    assert json.dumps(metrics.as_dict())
    host.deactivate(EXTENSION)
    assert host.inspect(EXTENSION).state.value == "deactivated"


@pytest.mark.parametrize("host", ["guard"], indirect=True)  # the guard's own check, in this process
def test_a_model_path_outside_the_granted_folders_is_refused_although_onnxruntime_reads_it_natively(
    host, digits, tmp_path
):
    elsewhere = tmp_path / "elsewhere" / "digits.onnx"
    elsewhere.parent.mkdir()
    shutil.copy(digits.path, elsewhere)
    host.discover()
    host.grant(EXTENSION)
    host.set_config(EXTENSION, "path", str(elsewhere))

    with pytest.raises(GuardDenied, match=r"fs.read of .*elsewhere/digits.onnx was not granted"):
        host.start(EXTENSION)

    info = host.inspect(EXTENSION)
    assert info.state.value == "failed"
    assert "fs.read" in info.problem.message


# Runs in a fresh Python, as a host application starts: nothing of onnxruntime is imported before the host
# starts the instrument under the guard.
FRESH_HOST = """
import json, shutil, sys
from pathlib import Path

site, home, model = sys.argv[1:4]
sys.path.insert(0, site)
from symphony_core import Host

assert "onnxruntime" not in sys.modules
with Host(home, path=sys.path, isolation="guard") as host:
    host.discover()
    data = host.home.data_dir("acme.digits")
    data.mkdir(parents=True)
    shutil.copy(model, data / "digits.onnx")
    host.grant("acme.digits")
    host.start("acme.digits")
    label = host.call("acme.digits", "infer", {"input": [0.0] * 64})["label"]
    denied = [record.detail for record in host.state.audit_log() if record.event == "permission_denied"]
print(json.dumps({"label": int(label), "denied": denied, "onnxruntime": "onnxruntime" in sys.modules}))
"""


def _fresh_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMPHONY_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    return env


def test_a_fresh_guarded_host_charges_none_of_the_kits_own_first_import_to_the_instrument(
    site, digits, tmp_path
):
    ran = subprocess.run(
        [sys.executable, "-c", FRESH_HOST, str(site), str(tmp_path / "home"), str(digits.path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_fresh_env(site),
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    outcome = json.loads(ran.stdout)
    assert outcome["onnxruntime"], "the instrument ran on onnxruntime, imported in this process"
    assert outcome["denied"] == [], "onnxruntime's own reads (/etc/os-release) are not the instrument's"


def test_learning_proposes_only_what_the_instrument_itself_reads(site, digits, tmp_path):
    home = tmp_path / "home"
    data = home / "extensions" / EXTENSION / "data"
    data.mkdir(parents=True)
    shutil.copy(digits.path, data / "digits.onnx")
    symphony = Path(sys.executable).parent / "symphony"

    ran = subprocess.run(
        [str(symphony), "--home", str(home), "learn", EXTENSION, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_fresh_env(site),
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    proposal = json.loads(ran.stdout)
    assert [(item["type"], item["paths"]) for item in proposal] == [("fs.read", ["{data}"])]
