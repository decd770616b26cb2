"""Real hostile extensions against the isolated tier, one attack per test.

Every distribution under ``extensions/`` (one folder each: its files as they go into the wheel, and a
``dist.toml`` with its name, version and entry points) is built into a real wheel here, once per
session, and installed with the workspace's core, ``symphony-operators`` and ``symphony-motifs`` (without
its window's dependencies) into one fresh environment. The extensions are motifs: that kit puts no front
of its own in the host for an isolated extension, so what an attack meets is the core's alone.
Placeholders ``@NAME@`` in their files are filled in at build time (the port a grant names, the folders
the ``.pth`` attack writes to and reads).

Each test then runs a host in that environment as a process of its own (``driver.py``, with
``SYMPHONY_HOME`` and ``HOME`` in the test's own folder, and a secret ``~/.ssh/id_rsa`` outside every
grant), which loads the attacking extension and a benign canary, performs the attack and reports as data
what happened. The test asserts the secure outcome.

The isolated tier needs Linux with Landlock and namespaces. Where the probe finds them missing these
tests fail when ``CI`` is set (CI must never pass without running them) and are skipped, saying so
loudly, elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomllib

from symphony_core import write_distribution

HERE = Path(__file__).resolve().parent
WORKSPACE = HERE.parents[1]
CORE = WORKSPACE / "packages" / "symphony-core"
OPERATORS = WORKSPACE / "packages" / "symphony-operators"
MOTIFS = WORKSPACE / "packages" / "symphony-motifs"
EXTENSIONS = HERE / "extensions"
DRIVER = HERE / "driver.py"
CANARY = "canary.echo"
CANARY_NOTE = "the canary's own note"
HOST_BYTECODE = "cache/worker-bytecode/"
IMPOSTORS = ("twin-impostor",)
"""Distributions installed into a folder of their own, which a test puts first on its host's path."""
NEEDED = ("landlock", "user_namespace", "network_namespace", "seccomp")
"""What the isolated tier must have here for these tests to mean anything."""


@pytest.fixture(scope="session", autouse=True)
def isolated_tier() -> None:
    """Fail (under CI) or skip loudly when this machine cannot run the isolated tier."""
    from symphony_core._security._sandbox._probe import probe

    found = probe()
    missing = [
        f"{name} ({found.mechanisms[name].detail if name in found.mechanisms else 'not probed'})"
        for name in NEEDED
        if not found.has(name)
    ]
    if not found.supported or missing:
        reason = (
            "SECURITY TESTS NOT RUN: the isolated tier cannot be tested on this machine: "
            + ("; ".join(missing) or f"platform {found.platform}")
            + ". `symphony doctor` says what is missing."
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


# Building and installing the hostile distributions


def _wheel(source: Path, out: Path, values: Mapping[str, str]) -> tuple[str, Path]:
    """Write ``source`` (a folder under ``extensions/``) as a wheel into ``out``; return its name and path."""
    meta = tomllib.loads((source / "dist.toml").read_text(encoding="utf-8"))
    name, version = meta["name"], meta["version"]
    files: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.name == "dist.toml":
            continue
        data = path.read_bytes()
        for key, value in values.items():
            data = data.replace(f"@{key}@".encode(), value.encode())
        files[path.relative_to(source).as_posix()] = data
    wheel = write_distribution(
        out,
        name,
        version,
        files=files,
        entry_points=meta.get("entry-points"),
        requires_python=">=3.10",
        wheel=True,
    )
    return name, wheel


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _clean_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UV_", "PIP_", "SYMPHONY_", "PYTEST_"))
        and key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX")
    }
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", COLUMNS="200")
    return env


def _run(*args: str | Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, env=dict(env), timeout=600, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr}")
    return done


def _install(uv: str, python: Path, env: Mapping[str, str], *args: str | Path) -> None:
    """``uv pip install`` from the local wheels and uv's cache; from the package index only if that fails."""
    command = [uv, "pip", "install", "--quiet", "--python", python, *args]
    try:
        _run(*command[:3], "--offline", *command[3:], env=env)
    except AssertionError:
        _run(*command, env=env)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Arena:
    """The session's environment of hostile distributions, and what was fixed when they were built."""

    root: Path
    python: Path
    env: dict[str, str]
    test_root: Path
    """The session's temporary folder: every test's folder is beneath it (a grant names it)."""
    impostors: Path
    """Where ``IMPOSTORS`` are installed (a host puts it first on its path to see them)."""
    port_granted: int
    """The TCP port ``hostile.net``'s grant names."""
    pth_folder: Path
    """The folder ``hostile_pth_path.pth`` adds to ``sys.path``; it holds ``secret.txt``."""
    pth_markers: Path
    """Where ``hostile_pth_hook.pth`` leaves one marker per interpreter it ran in."""
    pth_secret: str

    @property
    def symphony(self) -> Path:
        return self.python.parent / "symphony"


@pytest.fixture(scope="session")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Arena:
    """Every hostile distribution and the canary, built as wheels and installed into one new environment."""
    root = tmp_path_factory.mktemp("arena")
    test_root = tmp_path_factory.getbasetemp()
    pth_folder, pth_markers = root / "pth-folder", root / "pth-markers"
    pth_folder.mkdir()
    pth_markers.mkdir()
    pth_secret = f"PTH-SECRET-{os.urandom(8).hex()}"
    (pth_folder / "secret.txt").write_text(pth_secret, encoding="utf-8")
    values = {
        "TEST_ROOT": str(test_root),
        "PORT_GRANTED": str(_free_port()),
        "PTH_FOLDER": str(pth_folder),
        "PTH_MARKERS": str(pth_markers),
        "PTH_SECRET": str(pth_folder / "secret.txt"),
    }
    wheels = root / "wheels"
    wheels.mkdir()
    built = dict(_wheel(folder, wheels, values) for folder in sorted(EXTENSIONS.iterdir()) if folder.is_dir())
    uv, env = _uv(), _clean_env()
    venv = root / "venv"
    _run(uv, "venv", "--quiet", "--python", sys.executable, venv, env=env)
    python = venv / "bin" / "python"
    shared = [wheel for name, wheel in built.items() if name not in IMPOSTORS]
    _install(uv, python, env, "--compile-bytecode", "-e", CORE, OPERATORS, *shared)
    _install(uv, python, env, "--no-deps", MOTIFS)  # what the hostile motifs are built on; no window here
    impostors = root / "impostors"
    _install(uv, python, env, "--no-deps", "--target", impostors, *(built[name] for name in IMPOSTORS))
    return Arena(
        root=root,
        python=python,
        env=env,
        test_root=test_root,
        impostors=impostors,
        port_granted=int(values["PORT_GRANTED"]),
        pth_folder=pth_folder,
        pth_markers=pth_markers,
        pth_secret=pth_secret,
    )


# One host process per attack


@dataclass
class Outcome:
    """What a host process reported: each step, the final checks, the snapshots, how it ended."""

    report: dict[str, Any]
    returncode: int | None
    timed_out: bool
    seconds: float
    stderr: str
    raw: str
    secrets: tuple[str, ...]
    canary: bool = True
    """Whether the host ran the canary (its answers are then part of what must hold)."""

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        return {step["label"]: step for step in self.report.get("steps", ())}

    def step(self, label: str) -> dict[str, Any]:
        found = self.steps.get(label)
        assert found is not None, f"the host never got to step {label!r}\n{self.describe()}"
        return found

    def value(self, label: str) -> Any:
        """The value step ``label`` returned; it must have returned."""
        found = self.step(label)
        assert found["ok"], f"step {label!r} raised {found['error']}\n{self.describe()}"
        return found["value"]

    def error(self, label: str) -> dict[str, Any] | None:
        """What step ``label`` raised, or None if it returned."""
        found = self.step(label)
        return None if found["ok"] else found["error"]

    @property
    def final(self) -> dict[str, Any]:
        return self.report.get("final") or {}

    def harm(self) -> list[str]:
        """Everything that shows the host or another extension came to harm, in words."""
        problems = []
        if self.timed_out:
            problems.append(f"the host process hung: killed after {self.seconds:.0f} s")
        elif self.returncode != 0:
            problems.append(f"the host process exited with {self.returncode}")
        final = self.final
        if not final:
            problems.append("the host never got to its final checks")
        else:
            if not isinstance(final.get("extensions"), int):
                problems.append(f"the host no longer lists its extensions: {final.get('extensions')}")
            if self.canary and final.get("canary_echo") != "still here":
                problems.append(f"the canary no longer answers: {final.get('canary_echo')}")
            if self.canary and final.get("canary_note") != CANARY_NOTE:
                problems.append(f"the canary cannot read its own note: {final.get('canary_note')}")
        before, after = self.report.get("before"), self.report.get("after")
        if before and after:
            changed = sorted(
                key
                for key in {*before["items"], *after["items"]}
                if before["items"].get(key) != after["items"].get(key)
                # the host makes its bytecode cache when it starts its first worker
                and not (key == HOST_BYTECODE and before["items"].get(key) == "absent")
            )
            if changed:
                problems.append(f"changed by the attack: {', '.join(changed)}")
        problems += [f"a secret reached the host's report: {secret[:12]}..." for secret in self.leaked()]
        return problems

    def leaked(self) -> list[str]:
        return [secret for secret in self.secrets if secret in self.raw]

    def describe(self) -> str:
        """The steps as they happened, for assertion messages."""
        lines = [f"host process: exit {self.returncode}, {self.seconds:.1f} s, timed out: {self.timed_out}"]
        for step in self.report.get("steps", ()):
            outcome = json.dumps(step.get("value") if step["ok"] else step.get("error"), default=repr)
            lines.append(f"  {step['label']}: {'returned' if step['ok'] else 'raised'} {outcome[:1500]}")
        lines.append(f"  final: {json.dumps(self.final, default=repr)[:1500]}")
        tail = "\n".join(self.stderr.strip().splitlines()[-25:])
        return "\n".join(lines) + (f"\nhost stderr (last lines):\n{tail}" if tail else "")


@dataclass
class Running:
    """A host process still running its steps."""

    process: subprocess.Popen[bytes]
    scene: Scene
    started: float

    def wait_for(self, label: str, seconds: float = 60.0) -> dict[str, Any]:
        """Wait until the host has done step ``label``; return its record."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            report = self.scene.read_report()
            for step in report.get("steps", ()):
                if step["label"] == label:
                    return step  # type: ignore[no-any-return]
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"the host never did step {label!r}\n{self.finish(kill=True).describe()}")

    def kill(self) -> None:
        """SIGKILL the host process: no atexit, no cleanup."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def finish(self, timeout: float = 120.0, *, kill: bool = False) -> Outcome:
        timed_out = False
        if kill and self.process.poll() is None:
            self.kill()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
        return self.scene.outcome(self.process.returncode, timed_out, time.monotonic() - self.started)


@dataclass
class Scene:
    """One test's place: a Symphony home, a user home with a secret, and the host processes it runs."""

    arena: Arena
    folder: Path
    secret_text: str = field(default_factory=lambda: f"SECRET-{os.urandom(12).hex()}")
    runs: int = 0

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True)
        self.app.mkdir(parents=True)
        self.secret.parent.mkdir(parents=True)
        self.secret.write_text(self.secret_text, encoding="utf-8")
        shutil.copy(DRIVER, self.app / "driver.py")

    @property
    def home(self) -> Path:
        """``SYMPHONY_HOME``."""
        return self.folder / "symphony"

    @property
    def user(self) -> Path:
        """``HOME``: the user's home, with the secret in it."""
        return self.folder / "user"

    @property
    def secret(self) -> Path:
        return self.user / ".ssh" / "id_rsa"

    @property
    def app(self) -> Path:
        """The folder of the host's script."""
        return self.folder / "app"

    def data(self, ext_id: str) -> Path:
        return self.home / "extensions" / ext_id / "data"

    def cache(self, ext_id: str) -> Path:
        return self.home / "extensions" / ext_id / "cache"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            **self.arena.env,
            "HOME": str(self.user),
            "SYMPHONY_HOME": str(self.home),
            "PYTHONDONTWRITEBYTECODE": "1",
            **(extra or {}),
        }

    def launch(
        self,
        steps: Sequence[Mapping[str, Any]],
        *,
        attackers: Sequence[str],
        setup: Sequence[Mapping[str, Any]] = (),
        isolation: str = "isolated",
        call_budget: float | None = 20.0,
        path_first: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        canary: bool = True,
    ) -> Running:
        """Start a host process that grants and starts the canary, runs ``setup``, then ``steps``."""
        self.runs += 1
        options = {
            "home": str(self.home),
            "isolation": isolation,
            "call_budget": call_budget,
            "path_first": list(path_first),
            "attackers": list(attackers),
            "setup": list(setup),
            "steps": list(steps),
            "canary": canary,
            "results": str(self.results),
        }
        if self.results.exists():
            self.results.unlink()
        (self.folder / "options.json").write_text(json.dumps(options), encoding="utf-8")
        with self.stderr_file.open("wb") as stderr:
            process = subprocess.Popen(
                [str(self.arena.python), str(self.app / "driver.py"), str(self.folder / "options.json")],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                env=self.env(env),
                cwd=self.app,
            )
        return Running(process, self, time.monotonic())

    def run(self, steps: Sequence[Mapping[str, Any]], *, timeout: float = 150.0, **options: Any) -> Outcome:
        """Run a host process to its end (killed after ``timeout`` seconds) and return what it reported."""
        return self.launch(steps, **options).finish(timeout)

    @property
    def results(self) -> Path:
        return self.folder / f"results-{self.runs}.json"

    @property
    def stderr_file(self) -> Path:
        return self.folder / f"host-{self.runs}.stderr"

    def read_report(self) -> dict[str, Any]:
        try:
            report: dict[str, Any] = json.loads(self.results.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return report

    def outcome(self, returncode: int | None, timed_out: bool, seconds: float) -> Outcome:
        raw = self.results.read_text(encoding="utf-8") if self.results.exists() else "{}"
        return Outcome(
            report=self.read_report(),
            returncode=returncode,
            timed_out=timed_out,
            seconds=seconds,
            stderr=_tail(self.stderr_file),
            raw=raw,
            secrets=(self.secret_text, self.arena.pth_secret),
            canary=self.read_options().get("canary", True),
        )

    def read_options(self) -> dict[str, Any]:
        options: dict[str, Any] = json.loads((self.folder / "options.json").read_text(encoding="utf-8"))
        return options

    def symphony(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the environment's ``symphony`` command on this scene's home."""
        return subprocess.run(
            [str(self.arena.symphony), "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            env=self.env(env),
            cwd=self.app,
            timeout=150,
            check=False,
        )


def _tail(path: Path, size: int = 1 << 16) -> str:
    """The end of a log file (an attack may have written gigabytes to it)."""
    with path.open("rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - size))
        return file.read().decode("utf-8", "replace")


@pytest.fixture
def scene(arena: Arena, tmp_path: Path) -> Iterator[Scene]:
    """A place for one attack; big files an attack left behind are removed afterwards."""
    made = Scene(arena, tmp_path)
    yield made
    for leftover in [*made.home.glob("extensions/*/cache/fill-*.bin"), *made.folder.glob("host-*.stderr")]:
        if leftover.stat().st_size > 16 << 20:
            leftover.unlink()


def start(ext_id: str) -> list[dict[str, Any]]:
    """Setup steps that grant ``ext_id`` what it asks for and start it."""
    return [
        {"op": "grant", "ext": ext_id, "label": f"grant {ext_id}"},
        {"op": "start", "ext": ext_id, "label": f"start {ext_id}"},
    ]


def call(ext_id: str, method: str, *args: Any, label: str | None = None) -> dict[str, Any]:
    return {"op": "call", "ext": ext_id, "method": method, "args": list(args), "label": label or method}


class Steps:
    """Step builders, reachable from test modules as the ``steps`` fixture (they cannot import conftest)."""

    start = staticmethod(start)
    call = staticmethod(call)
    CANARY = CANARY


@pytest.fixture(scope="session")
def steps() -> type[Steps]:
    return Steps
