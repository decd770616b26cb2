"""The window process: one motif's served page in a pywebview window, until the window closes.

pywebview allows one ``webview.start()`` per process, and a window that crashes must not take its host
down, so each window is a process of its own. It holds no host and imports no extension: it only shows
the page the host serves, with the same bridge and checks as served mode.

It talks to its parent (`symphony_motifs.MotifWindow`) through JSON lines: it writes
``{"loaded": true}`` when the page has loaded and answers ``{"id": n, "evaluate": "<expression>"}``
with ``{"id": n, "result": ...}`` (or ``"error"``); ``{"close": true}`` or the end of its input closes
the window.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any


def _serve_commands(window: Any, commands: IO[str], answers: IO[str]) -> None:
    """In the child: run the parent's commands against the window until stdin closes."""
    lock = threading.Lock()

    def answer(message: dict[str, Any]) -> None:
        with lock:
            answers.write(json.dumps(message) + "\n")
            answers.flush()

    window.events.loaded += lambda: answer({"loaded": True})
    for line in commands:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("close"):
            break
        if "evaluate" in message:
            try:
                # run_js, not evaluate_js: pywebview's evaluate_js wraps the script in eval(), which the
                # page's Content-Security-Policy refuses.
                text = window.run_js(f"JSON.stringify(({message['evaluate']}\n))")
                answer({"id": message["id"], "result": None if text is None else json.loads(text)})
            except Exception as exc:  # noqa: BLE001 - reported to the parent, the window goes on
                answer({"id": message["id"], "error": f"{type(exc).__name__}: {exc}"})
    window.destroy()


def main(argv: Sequence[str] | None = None) -> int:
    """The child process: show one URL in a pywebview window until it is closed."""
    parser = argparse.ArgumentParser(prog="python -m symphony_motifs._window_process")
    parser.add_argument("url")
    parser.add_argument("--title", default="Symphony")
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--gui", default=None, help="pywebview backend: qt, gtk, ...")
    options = parser.parse_args(argv)
    import webview

    answers = sys.stdout
    sys.stdout = sys.stderr  # GUI libraries that print must not break the JSON lines to the parent
    window = webview.create_window(options.title, options.url, width=options.width, height=options.height)
    webview.start(_serve_commands, (window, sys.stdin, answers), gui=options.gui, private_mode=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
