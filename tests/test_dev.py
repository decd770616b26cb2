"""``symphony dev`` on projects made by ``symphony new`` with the real kits: a save restarts the extension
in new isolated workers and a real call answers with the new code; a broken manifest or a syntax error is
reported with its file and line while the running version keeps answering; a motif's open page reloads
itself in a real browser."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from symphony_core._authoring._dev import (
    DevEvent,
    DevProject,
    DevSession,
    Failed,
    Ready,
    Refreshed,
    Rejected,
    Reloaded,
)

BIN = Path(sys.executable).parent
BROWSER = shutil.which("chromium")
FRAME = pl.LazyFrame({"key": ["x", "y", "x"], "value": [1.0, 2.0, 4.0]})
pytestmark = pytest.mark.slow


def new_project(kind: str, name: str, folder: Path) -> Path:
    done = subprocess.run(
        [BIN / "symphony", "new", kind, name, "--dir", folder, "--no-input", "--no-git"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return folder


class Running:
    """A `DevSession` started here and watching in a thread; its events in a queue."""

    def __init__(self, session: DevSession, events: queue.Queue[DevEvent]) -> None:
        self.session = session
        self.events = events

    def next(self, *kinds: type[Any], timeout: float = 30.0) -> Any:
        """The next event of one of ``kinds``, skipping others."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(event, kinds):
                return event
        raise AssertionError(f"no {', '.join(kind.__name__ for kind in kinds)} within {timeout:g} s")

    def save(self, path: Path, text: str, *kinds: type[Any]) -> Any:
        """Write ``path`` until the watcher reports a save of it as one of ``kinds`` (the watcher starts
        in its own thread, so the first write may come before it watches)."""
        while not self.events.empty():  # what earlier saves reported
            self.events.get_nowait()
        for _ in range(5):
            path.write_text(text, encoding="utf-8")
            try:
                return self.next(*kinds, timeout=5.0)
            except AssertionError:
                continue
        raise AssertionError(f"saving {path} was never reported as {kinds}")


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Any]:
    started: list[tuple[DevSession, threading.Thread, threading.Event]] = []

    def run(folder: Path, **options: Any) -> Running:
        events: queue.Queue[DevEvent] = queue.Queue()
        session = DevSession(DevProject.read(folder), home=tmp_path / "home", report=events.put, **options)
        session.start()
        stop = threading.Event()
        thread = threading.Thread(target=session.run, args=(stop,), daemon=True)
        thread.start()
        started.append((session, thread, stop))
        return Running(session, events)

    yield run
    for session, thread, stop in started:
        stop.set()
        thread.join(10)
        session.close()


def test_a_saved_operator_answers_a_real_call_with_its_new_code(dev, tmp_path):
    project = new_project("operator", "acme-totals", tmp_path / "totals")
    code = project / "src" / "acme_totals" / "__init__.py"

    running = dev(project)
    ready = running.next(Ready)
    host = running.session.host
    before = host.call("acme.totals", "apply", FRAME).collect()
    reloaded = running.save(
        code,
        code.read_text().replace(
            'pl.len().alias("rows")', 'pl.len().alias("rows"), pl.col("value").max().alias("top")'
        ),
        Reloaded,
        Failed,
    )
    after = host.call("acme.totals", "apply", FRAME).collect()

    assert ready.tier == "isolated"
    assert host.inspect("acme.totals").tier == "isolated"
    assert isinstance(reloaded, Reloaded), reloaded
    assert reloaded.extensions == ("acme.totals",)
    assert reloaded.changed == ("src/acme_totals/__init__.py",)
    assert before.columns == ["key", "rows", "total"]
    assert after.columns == ["key", "rows", "top", "total"] or "top" in after.columns
    assert after.filter(pl.col("key") == "x")["top"].to_list() == [4.0]


def test_a_syntax_error_is_shown_with_its_line_and_the_running_version_keeps_answering(dev, tmp_path):
    project = new_project("operator", "acme-totals", tmp_path / "totals")
    code = project / "src" / "acme_totals" / "__init__.py"
    good = code.read_text()

    running = dev(project)
    running.next(Ready)
    rejected = running.save(code, good + "\ndef broken(:\n", Rejected)
    still = running.session.host.call("acme.totals", "apply", FRAME).collect()
    fixed = running.save(code, good.replace('"total"', '"sum"'), Reloaded)

    (finding,) = rejected.findings
    assert (finding.file, finding.check) == ("src/acme_totals/__init__.py", "syntax")
    assert finding.line == good.count("\n") + 2
    assert still.columns == ["key", "rows", "total"]
    assert fixed.extensions == ("acme.totals",)
    assert running.session.host.call("acme.totals", "apply", FRAME).collect().columns == [
        "key",
        "rows",
        "sum",
    ]


def test_an_error_raised_while_the_new_code_is_imported_names_its_file_and_line(dev, tmp_path):
    project = new_project("operator", "acme-totals", tmp_path / "totals")
    code = project / "src" / "acme_totals" / "__init__.py"
    good = code.read_text()

    running = dev(project)
    running.next(Ready)
    failed = running.save(code, good + "\nundefined_name\n", Failed)
    reloaded = running.save(code, good, Reloaded)

    assert (failed.file, failed.line) == ("src/acme_totals/__init__.py", good.count("\n") + 2)
    assert "NameError: name 'undefined_name' is not defined" in failed.message
    assert reloaded.extensions == ("acme.totals",)


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _until(lines: queue.Queue[str], pattern: str, seen: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            return False
        seen.append(line)
        if re.search(pattern, line):
            return True
    return False


def test_symphony_dev_says_why_a_broken_manifest_is_refused_and_keeps_watching(tmp_path):
    project = new_project("operator", "acme-totals", tmp_path / "totals")
    manifest = project / "src" / "acme_totals" / "symphony.toml"
    good = manifest.read_text()
    broken = good.replace('summary = "Counts', 'summary = 42\nnote = "Counts')
    env = {**os.environ, "SYMPHONY_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    process = subprocess.Popen(
        [BIN / "symphony", "dev", project, "--yes", "--exit-after", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    seen: list[str] = []
    try:
        lines = _lines(process)
        assert _until(lines, r"^watching ", seen, 60), "".join(seen)
        for _ in range(5):
            manifest.write_text(broken)
            if _until(lines, r"still watching", seen, 5):
                break
        for _ in range(5):
            manifest.write_text(good)
            if _until(lines, r"^reloaded acme\.totals in \d+ ms \(src/acme_totals/symphony\.toml\)", seen, 5):
                break
        status = process.wait(30)
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
    output = "".join(seen)

    assert status == 0, output
    assert "ready: acme.totals (isolated tier)" in output
    assert re.search(r"error src/acme_totals/symphony\.toml:\d+: summary: .*string", output), output
    assert "not reloaded: what runs is unchanged; still watching" in output
    assert re.search(r"reloaded acme\.totals in \d+ ms", output), output


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command's name (state first), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _descendants(pid: int) -> dict[int, str]:
    """The processes under ``pid``, each with its start time (to tell it from a later one with its id)."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    below = [pid]
    while below:
        for child in children.get(below.pop(), []):
            found[child] = started[child]
            below.append(child)
    return found


def _alive(pid: int, started: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="isolated workers, and /proc to find them, are Linux's")
def test_symphony_dev_stopped_by_sigterm_stops_its_workers_and_removes_their_folders(tmp_path):
    project = new_project("operator", "acme-totals", tmp_path / "totals")
    env = {**os.environ, "SYMPHONY_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    process = subprocess.Popen(
        [BIN / "symphony", "dev", project, "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    # a worker's exchange folder is named after its host's process id
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    seen: list[str] = []
    try:
        lines = _lines(process)
        assert _until(lines, r"^watching ", seen, 60), "".join(seen)
        workers = _descendants(process.pid)
        exchanges = list(shm.glob(f"symphony-{process.pid}-*"))
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(30)
        took = time.monotonic() - began
        left = [pid for pid, started in workers.items() if _alive(pid, started)]
        _until(lines, r"^stopped$", seen, 5)
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
    output = "".join(seen)

    assert workers, output
    assert exchanges, output
    assert status == 0, output
    assert took < 10, f"stopped {took:.1f} s after SIGTERM"
    assert left == [], output
    assert not any(folder.exists() for folder in exchanges)
    assert "stopped" in output


@pytest.mark.skipif(BROWSER is None, reason="needs Debian's chromium (see .ci/run)")
def test_a_motifs_open_page_reloads_itself_on_a_save_and_calls_its_new_code(dev, tmp_path):
    from playwright.sync_api import sync_playwright

    project = new_project("motif", "acme-board", tmp_path / "board")
    package = project / "src" / "acme_board"
    page_file, code = package / "web" / "index.html", package / "__init__.py"
    html, python = page_file.read_text(), code.read_text()

    running = dev(project)
    ready = running.next(Ready)
    url = ready.pages["acme.board"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=BROWSER,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        try:
            page = browser.new_page()
            page.goto(url)
            settled(page, "window.symphony !== undefined")
            page.evaluate("window.__before = true")
            refreshed = running.save(
                page_file, html.replace("<title>Board</title>", "<title>Board v2</title>"), Refreshed
            )
            settled(page, "document.title === 'Board v2' && window.__before === undefined")
            page.evaluate("window.__before = true")
            running.save(
                code,
                python.replace(
                    'f"{self.config.greeting}, {name}!"', 'f"{self.config.greeting} again, {name}!"'
                ),
                Reloaded,
            )
            settled(page, "window.__before === undefined && window.symphony !== undefined")
            answer = page.evaluate("symphony.call('greet', {name: 'Ada'})")
        finally:
            browser.close()

    assert 'f"{self.config.greeting}, {name}!"' in python
    assert refreshed.pages == 1
    assert answer == "Hello again, Ada!"


def settled(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Wait until ``expression`` holds in the page, asking it again every 20 ms. Playwright's own
    ``wait_for_function`` compiles its predicate in the page, which the motif's CSP (no ``unsafe-eval``)
    refuses once the page has reloaded; ``evaluate`` is not held to it. A page that is reloading answers
    with an error, and is asked again."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout
    while True:
        try:
            if page.evaluate(expression):
                return
        except Error:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not reach {expression!r} within {timeout} s")
        time.sleep(0.02)
