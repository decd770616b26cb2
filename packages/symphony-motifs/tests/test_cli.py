"""``symphony ui``, added to the core's command line through the ``symphony.commands`` entry point."""

from __future__ import annotations

import http.client
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SYMPHONY = Path(sys.executable).parent / "symphony"


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYMPHONY_HOME": str(home)}
    return subprocess.run(
        [str(SYMPHONY), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_symphony_lists_and_explains_the_ui_command(tmp_path: Path) -> None:
    listed = run("--help", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "ui" in listed.stdout.split()
    helped = run("ui", "--help", home=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "--serve" in helped.stdout
    assert "symphony ui --serve" in helped.stdout
    assert "--isolation [auto|isolated|guard]" in helped.stdout


def test_the_marketplace_is_an_installed_motif(tmp_path: Path) -> None:
    listed = run("list", "--json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"id": "symphony.marketplace"' in listed.stdout
    assert '"state": "validated"' in listed.stdout


@pytest.mark.slow
def test_symphony_ui_serve_prints_the_local_url_and_serves_the_marketplace(tmp_path: Path) -> None:
    env = {**os.environ, "SYMPHONY_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [str(SYMPHONY), "ui", "--serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname) == ("http", "127.0.0.1")
        assert parts.port is not None
        connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
        try:
            connection.request("GET", parts.path)
            response = connection.getresponse()
            body = response.read().decode()
        finally:
            connection.close()
        assert response.status == 200
        assert "<title>Symphony marketplace</title>" in body
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, errors
    assert "127.0.0.1 only" in errors


def test_symphony_ui_names_a_motif_that_is_not_installed(tmp_path: Path) -> None:
    failed = run("ui", "--serve", "--motif", "acme.nowhere", home=tmp_path)
    assert failed.returncode == 1
    assert "acme.nowhere: no installed extension has this id" in failed.stderr
    assert "symphony list" in failed.stderr


@pytest.mark.parametrize(
    ("display", "says"),
    [
        ({}, "there is no display (DISPLAY and WAYLAND_DISPLAY are unset)"),
        ({"DISPLAY": ":4242"}, "cannot open a window: "),  # a display nobody serves: no backend can start
    ],
    ids=["no display", "unusable display"],
)
def test_symphony_ui_without_a_usable_display_says_so_in_one_line_and_exits_1(
    tmp_path: Path, display: dict[str, str], says: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")},
        "SYMPHONY_HOME": str(tmp_path),
        **display,
    }
    failed = subprocess.run(
        [str(SYMPHONY), "ui"], capture_output=True, text=True, env=env, timeout=180, check=False
    )

    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith("error: symphony.marketplace: cannot open a window: ")
    assert says in lines[0]
    assert "symphony ui --serve" in lines[0]
    assert 'pip install "symphony-motifs[qt]"' in lines[0]
    assert window_processes(os.getpid()) == []


def window_processes(parent: int) -> list[int]:
    """The window processes started by ``parent`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if int(ppid) == parent and b"symphony_motifs._window_process" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_symphony_ui_opens_a_window_process_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SYMPHONY_HOME": str(tmp_path),
        "QT_QPA_PLATFORM": "offscreen",
        "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox",
    }
    process = subprocess.Popen(
        [str(SYMPHONY), "ui", "--gui", "qt"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        said = ""
        with selectors.DefaultSelector() as selector:  # until it says its window shows the page
            selector.register(process.stderr, selectors.EVENT_READ)
            deadline = time.monotonic() + 120
            while "in a window" not in said and selector.select(max(0.0, deadline - time.monotonic())):
                line = process.stderr.readline()
                if not line:
                    break
                said += line
        assert "Showing Marketplace in a window" in said, said
        windows = window_processes(process.pid)
        assert windows, "no window process was started"
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, errors
    assert (
        not Path(f"/proc/{windows[0]}").exists()
        or b"zombie" in Path(f"/proc/{windows[0]}/status").read_bytes()
    )
