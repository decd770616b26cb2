"""The tutorials in docs/tutorials/ work as written: their commands are run in order, as a reader would.

How a tutorial is read (the convention its authors follow):

- In a ```` ```console ```` block, each line that starts with ``$ `` is a command; a line ending in
  `` \\`` continues on the next one. Other lines are sample output, shown to the reader and not
  compared (versions, timings and paths differ from machine to machine). Every command must succeed.
- A block of any language with a ``title="PATH"`` attribute (```` ```python title="src/acme/x.py" ````,
  which the site shows as the file's name) is the full content of that file: it is written at PATH,
  relative to the current folder, at its place in the sequence.
- Blocks of other languages without a title (``bash``, ``text``, ``toml``...) are for reading only.

A tutorial that tests in a real browser drives Debian's Chromium (``/usr/bin/chromium``, which ``.ci/run``
installs); without it, the tutorial fails under ``CI`` and is skipped elsewhere, saying why, so that its
browser tests are never skipped unseen.

With ``TUTORIAL_TRANSCRIPTS=FOLDER`` set, what every command printed is kept in ``FOLDER/<tutorial>.txt``,
for the sample output shown on the pages.

The commands run in a fresh temporary folder with a fresh Symphony home (``SYMPHONY_HOME``), one after
the other. ``cd DIR``, ``source VENV/bin/activate`` and ``deactivate`` change the state later commands
run in, as they would in a shell; every other command runs in ``bash`` with that state. ``python`` is
the interpreter running this test.

The published names are not on PyPI yet, so pip finds Symphony's distributions in a wheelhouse built
here from ``packages/*`` (``PIP_FIND_LINKS``), each pinned to the workspace's version by a constraints
file, and everything else (polars, onnxruntime, pytest, build backends) on the package index. pip runs
with ``PIP_CONFIG_FILE=/dev/null`` and without this machine's ``PIP_*`` index settings (its certificate
setting stays). ``tests/test_publish.py`` rehearses the real publish, with the two-step install that keeps
``symphony-*`` names off every index but ours.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "docs" / "tutorials"
PACKAGES = ("symphony-core", "symphony-instruments", "symphony-operators", "symphony-motifs")
COMMAND_TIMEOUT = 900

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)\s*(?P<attrs>.*)$")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')

# Tutorials whose commands are not run, with the reason (shown as the skip reason).
NOT_RUN: dict[str, str] = {}
# Tutorials that test in Debian's Chromium, whose browser tests pytest would skip without it. CI installs
# it (.ci/run), and there a missing browser fails them; elsewhere they are skipped, saying so.
CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = frozenset({"browser-tests.md"})


@dataclass(frozen=True)
class Step:
    """One thing a reader does: run a command, or write a file."""

    line: int
    command: str | None = None
    path: str | None = None
    content: str | None = None


def read_steps(markdown: str) -> list[Step]:
    """The commands and files of a tutorial, in document order."""
    steps: list[Step] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence, lang = opening["indent"], opening["fence"], opening["lang"]
        title = TITLE.search(opening["attrs"])
        start = index + 1
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        index += 1  # the closing fence
        if title:
            steps.append(Step(start, path=title["title"], content="\n".join(body) + "\n"))
        elif lang == "console":
            steps.extend(_commands(body, start))
    return steps


def _commands(body: list[str], start: int) -> list[Step]:
    steps: list[Step] = []
    pending: list[str] = []
    first = start
    for offset, line in enumerate(body):
        if not pending:
            if not line.startswith("$ "):
                continue
            first, line = start + offset + 1, line[2:]
        if line.endswith("\\"):
            pending.append(line[:-1].rstrip())
            continue
        pending.append(line)
        steps.append(Step(first, command=" ".join(part.strip() for part in pending)))
        pending = []
    assert not pending, f"line {first}: a command ends with a line continuation"
    return steps


def test_the_convention_reads_commands_files_and_continuations() -> None:
    markdown = """
Text with `$ not a command`.

```console
$ pip install \\
    symphony-operators
Successfully installed ...
$ symphony new operator acme.delays
```

```python title="src/acme/x.py"
print("hi")
```

```bash
echo only for reading
```
"""
    assert read_steps(markdown) == [
        Step(5, command="pip install symphony-operators"),
        Step(8, command="symphony new operator acme.delays"),
        Step(11, path="src/acme/x.py", content='print("hi")\n'),
    ]


def test_every_tutorial_has_commands_to_run() -> None:
    tutorials = sorted(TUTORIALS.glob("*.md"))
    assert tutorials, "docs/tutorials/ has no tutorial"
    for tutorial in tutorials:
        if tutorial.name == "index.md":
            continue
        steps = read_steps(tutorial.read_text(encoding="utf-8"))
        assert any(step.command for step in steps), f"{tutorial.name} has no command for this test to run"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the four distributions built from the workspace, and constraints pinning their versions."""
    from uv import find_uv_bin

    out = tmp_path_factory.mktemp("wheelhouse")
    pins = []
    for folder in PACKAGES:
        project = ROOT / "packages" / folder
        subprocess.run(
            [find_uv_bin(), "--no-config", "build", "--wheel", "--quiet", "--out-dir", out, project],
            check=True,
        )
        meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        pins.append(f"{meta['name']}=={meta['version']}\n")
    (out / "constraints.txt").write_text("".join(pins), encoding="utf-8")
    return out


class Reader:
    """Runs a tutorial's steps the way a reader at a shell would."""

    def __init__(self, folder: Path, wheelhouse: Path, name: str) -> None:
        self.name = name
        self.cwd = folder
        shims = folder.parent / "shims"
        shims.mkdir()
        (shims / "python").symlink_to(sys.executable)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PIP_", "UV_", "PYTEST_", "SYMPHONY_", "HATCH_"))
            and key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX"}
        }
        if "PIP_CERT" in os.environ:
            env["PIP_CERT"] = os.environ["PIP_CERT"]
        env |= {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_FIND_LINKS": str(wheelhouse),
            "PIP_CONSTRAINT": str(wheelhouse / "constraints.txt"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_PROGRESS_BAR": "off",
            "SYMPHONY_HOME": str(folder.parent / "symphony-home"),
            "PATH": os.pathsep.join(
                [str(shims), *outside_this_environment(os.environ.get("PATH", os.defpath))]
            ),
            "NO_COLOR": "1",
            "COLUMNS": "120",
        }
        self.base_path = env["PATH"]
        self.env = env
        self.log: list[str] = []

    def run(self, step: Step) -> None:
        where = f"docs/tutorials/{self.name}:{step.line}"
        if step.path is not None:
            target = self.cwd / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.content or "", encoding="utf-8")
            self.log.append(f"--- wrote {step.path}")
            return
        command = step.command or ""
        words = shlex.split(command, comments=True)
        self.log.append(f"$ {command}")
        if words and words[0] == "cd" and len(words) == 2:
            self.cwd = (self.cwd / words[1]).resolve()
            assert self.cwd.is_dir(), f"{where}: no folder {self.cwd}"
        elif words and words[0] in {"source", "."} and len(words) == 2 and words[1].endswith("bin/activate"):
            venv = (self.cwd / words[1]).resolve().parent.parent
            assert (venv / "bin" / "python").exists(), f"{where}: no venv at {venv}"
            self.env["VIRTUAL_ENV"] = str(venv)
            self.env["PATH"] = f"{venv / 'bin'}{os.pathsep}{self.base_path}"
        elif words == ["deactivate"]:
            self.env.pop("VIRTUAL_ENV", None)
            self.env["PATH"] = self.base_path
        else:
            started = time.monotonic()
            result = subprocess.run(
                ["bash", "-o", "pipefail", "-ec", command],
                cwd=self.cwd,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            self.log.append(result.stdout.rstrip())
            self.log.append(f"(exit {result.returncode}, {time.monotonic() - started:.1f} s)")
            if result.returncode != 0:
                transcript = "\n".join(self.log)[-12000:]
                pytest.fail(
                    f"{where}: `{command}` exited with {result.returncode}\n\n{transcript}", pytrace=False
                )


def outside_this_environment(path: str) -> list[str]:
    """The folders of ``path`` without this test's own environment, so a tutorial cannot lean on its tools."""
    ours = {Path(sys.prefix) / "bin", Path(sys.executable).parent}
    if "VIRTUAL_ENV" in os.environ:
        ours.add(Path(os.environ["VIRTUAL_ENV"]) / "bin")
    return [folder for folder in path.split(os.pathsep) if folder and Path(folder) not in ours]


def tutorial_params() -> list[object]:
    params: list[object] = []
    for tutorial in sorted(TUTORIALS.glob("*.md")):
        if tutorial.name == "index.md":
            continue
        marks = [pytest.mark.skip(reason=NOT_RUN[tutorial.name])] if tutorial.name in NOT_RUN else []
        params.append(pytest.param(tutorial.name, marks=marks, id=tutorial.stem))
    return params


@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("name", tutorial_params())
def test_the_tutorial_works_as_written(name: str, wheelhouse: Path, tmp_path: Path) -> None:
    if name in NEEDS_CHROMIUM and not CHROMIUM.exists():
        missing = f"{name} tests in a real browser and {CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    folder = tmp_path / "work"
    folder.mkdir()
    reader = Reader(folder, wheelhouse, name)
    try:
        for step in read_steps((TUTORIALS / name).read_text(encoding="utf-8")):
            reader.run(step)
    finally:
        if os.environ.get("TUTORIAL_TRANSCRIPTS"):  # a folder: where to keep what each command printed
            transcripts = Path(os.environ["TUTORIAL_TRANSCRIPTS"])
            transcripts.mkdir(parents=True, exist_ok=True)
            (transcripts / f"{Path(name).stem}.txt").write_text(
                "\n".join(reader.log) + "\n", encoding="utf-8"
            )
