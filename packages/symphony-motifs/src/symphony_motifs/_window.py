"""Window mode: a motif's served page in a pywebview window, one window per child process.

pywebview allows one ``webview.start()`` per process, and a window that crashes must not take its host
down, so each window runs in a child process that imports nothing of the host or the motif: it only
shows the page the host serves (the same page, bridge and checks as served mode).

The child is `symphony_motifs._window_process`; this module is the parent's side of it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any

from ._errors import MotifError
from ._server import MotifServer

log = logging.getLogger("symphony.motifs.window")
_KEPT_LINES = 40  # of what the window process wrote on stderr, to say why it failed


class MotifWindow:
    """A motif shown in a pywebview window by a child process; closing it stops the motif's server."""

    def __init__(self, server: MotifServer, process: subprocess.Popen[str]) -> None:
        self.server = server
        self.process = process
        self._answers: dict[int, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self._next = 0
        self._loaded = False
        self._said: collections.deque[str] = collections.deque(maxlen=_KEPT_LINES)
        self._reader = threading.Thread(target=self._read, name="symphony-window-reader", daemon=True)
        self._reader.start()
        self._listener = threading.Thread(target=self._listen, name="symphony-window-stderr", daemon=True)
        self._listener.start()

    @classmethod
    def launch(
        cls, server: MotifServer, *, title: str, width: int, height: int, gui: str | None = None
    ) -> MotifWindow:
        """Start the child process that shows ``server``'s page."""
        command = [sys.executable, "-m", "symphony_motifs._window_process", server.url, "--title", title]
        command += ["--width", str(width), "--height", str(height)]
        if gui is not None:
            command += ["--gui", gui]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # what GUI libraries say goes to the log, and into the error if it fails
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        return cls(server, process)

    def wait_loaded(self, timeout: float = 60.0) -> None:
        """Wait until the page has loaded; `MotifError` if the window process ended or took too long,
        saying why in one line (no display, no GUI backend) and what to do instead."""
        with self._changed:
            done = self._changed.wait_for(lambda: self._loaded or self.process.poll() is not None, timeout)
        if self._loaded:
            return
        if done:
            self.process.wait()
            self._listener.join(5)  # all it said, to tell why
        reason = f"its page did not load within {timeout:g} s" if not done else self._why_not()
        raise MotifError(
            f"cannot open a window: {reason}",
            extension=self.server.assets.extension,
            hint='run `symphony ui --serve` and open the URL it prints in a browser, or install a GUI backend: pip install "symphony-motifs[qt]"',
        )

    def _why_not(self) -> str:
        """Why the window process ended before its page loaded, from what it said."""
        said = "\n".join(self._said)
        if sys.platform == "linux" and not any(
            os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
        ):
            return "there is no display (DISPLAY and WAYLAND_DISPLAY are unset)"
        if "No module named" in said or "cannot be loaded" in said or "could not be" in said:
            return "no GUI backend of pywebview could start here"
        last = next((line.strip() for line in reversed(self._said) if line.strip()), "")
        code = self.process.returncode
        return f"its process ended ({'signal ' + str(-code) if code < 0 else 'status ' + str(code)})" + (
            f": {last}" if last else ""
        )

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """Evaluate a JavaScript expression in the window's page and return its value, through JSON.

        The page's Content-Security-Policy forbids ``eval``, so this takes an expression (wrap statements
        in a function called in place); a promise is not awaited.
        """
        with self._changed:
            self._next += 1
            number = self._next
        self._send({"id": number, "evaluate": expression})
        with self._changed:
            self._changed.wait_for(
                lambda: number in self._answers or self.process.poll() is not None, timeout
            )
            answer = self._answers.pop(number, None)
        if answer is None:
            raise MotifError("its window did not answer", extension=self.server.assets.extension)
        if "error" in answer:
            raise MotifError(
                f"script failed in its window: {answer['error']}", extension=self.server.assets.extension
            )
        return answer.get("result")

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the window to be closed (by its user or by `close`); then stop the server."""
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is not None:
                self._finish()
        return code

    def close(self, timeout: float = 10.0) -> None:
        """Close the window, end its process and stop the server."""
        if self.process.poll() is None:
            try:
                self._send({"close": True})
                self.process.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._finish()

    def __enter__(self) -> MotifWindow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _finish(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._reader.join(5)
        self._listener.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.server.close()

    def _send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is None or self.process.poll() is not None:
            raise MotifError("its window is closed", extension=self.server.assets.extension)
        stdin.write(json.dumps(message) + "\n")
        stdin.flush()

    def _listen(self) -> None:
        """Keep the last lines the window process writes on stderr, and log them."""
        stderr = self.process.stderr
        if stderr is None:
            return
        try:
            for line in stderr:
                self._said.append(line.rstrip())
                log.debug("window: %s", line.rstrip())
        except ValueError:
            pass  # the stream was closed by _finish

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            for line in stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # a GUI library writing to stdout: not ours
                with self._changed:
                    if message.get("loaded"):
                        self._loaded = True
                    elif isinstance(message.get("id"), int):
                        self._answers[message["id"]] = message
                    self._changed.notify_all()
        except ValueError:
            pass  # the stream was closed by _finish
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)  # its output ends as it exits: let waiters see it has
        with self._changed:
            self._changed.notify_all()
