"""Window mode for real: a pywebview window (Qt backend, offscreen) in a child process, on a real host."""

from __future__ import annotations

import time
from typing import Any

import pytest

from symphony_core import Host
from symphony_motifs import MotifWindow, open_window

pytestmark = pytest.mark.slow


@pytest.fixture
def offscreen_qt(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Qt WebEngine needs without a display, as root (inherited by the window's process)."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setenv("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")


def wait_for(window: MotifWindow, script: str, expected: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = window.evaluate(script)
        if value == expected:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{script!r} stayed {value!r}, expected {expected!r}")


def test_a_motif_runs_in_a_pywebview_window_of_its_own_process(
    host: Host, board: str, offscreen_qt: None
) -> None:
    import os

    window = open_window(host, board, gui="qt")
    try:
        window.wait_loaded(timeout=90)
        assert window.process.pid != os.getpid()
        assert window.evaluate("document.title") == "Board"
        # The page called greet() through the bridge when it loaded: Python ran in the host for it.
        wait_for(window, "document.getElementById('greeting').textContent", "Hello, page!")
        # An event pushed by the motif reaches the window's page.
        assert host.call(board, "invoke", "tick", {"count": 2}) == 2
        wait_for(window, "document.querySelectorAll('#events li').length", 2)
        # A call from JavaScript started here, awaited in the page.
        window.evaluate("symphony.call('add', {a: 20, b: 22}).then((n) => { document.title = 'sum ' + n; })")
        wait_for(window, "document.title", "sum 42")
    finally:
        window.close()
    assert window.process.returncode == 0
    assert host.inspect(board).state.value == "deactivated"  # closing the window stopped the motif
