"""Run by ``hostile_pth_hook.pth`` in every interpreter that processes the environment's ``.pth`` files.

It records one marker per process in the test's marker folder: its pid, command line, working folder,
whether it runs restricted (``NoNewPrivs``, a seccomp filter) and whether it could read the secret.
"""

import json
import os

MARKERS = "@PTH_MARKERS@"
SECRET = "@PTH_SECRET@"


def _probe() -> None:
    try:
        with open("/proc/self/cmdline", "rb") as file:
            command = [part.decode(errors="replace") for part in file.read().split(b"\0") if part]
        with open("/proc/self/status", encoding="ascii", errors="replace") as file:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in file if ":\t" in line)
        try:
            with open(SECRET, encoding="utf-8") as file:
                secret = file.read()
        except OSError as exc:
            secret = f"refused: {exc.strerror}"
        record = {
            "pid": os.getpid(),
            "command": command,
            "cwd": os.getcwd(),
            "worker": "symphony_core._security._sandbox._worker" in command,
            "restricted": status.get("NoNewPrivs") == "1" or status.get("Seccomp", "0") != "0",
            "secret": secret,
        }
        path = os.path.join(MARKERS, f"{os.getpid()}.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(record, file)
    except OSError:
        pass


_probe()
