"""Attack: a double-forked daemon in its own session, meant to outlive the host and its worker.

The daemon writes its pid to ``{cache}/daemon.pid`` and a line to ``{cache}/daemon.beats`` every 0.2 s, and
ends by itself after ``seconds``.
"""

from __future__ import annotations

import os
import time

from hostile_kit import Hostile


class Ext(Hostile):
    def spawn(self, seconds: float) -> int:
        cache = self.context.cache_dir
        pid_file = cache / "daemon.pid"
        child = os.fork()
        if child == 0:
            try:
                os.setsid()
                if os.fork() == 0:
                    (cache / "daemon.pid.part").write_text(str(os.getpid()), encoding="ascii")
                    os.replace(cache / "daemon.pid.part", pid_file)
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline:
                        with open(cache / "daemon.beats", "a", encoding="ascii") as beats:
                            beats.write(f"{time.time()}\n")
                        time.sleep(0.2)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return int(pid_file.read_text(encoding="ascii"))
