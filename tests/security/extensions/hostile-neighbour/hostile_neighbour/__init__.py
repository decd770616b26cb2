"""Attack: change the host process's limits, priority, CPUs and scheduling, and signal it.

The host's pid is what ``os.getppid()`` says; the test passes the pid it expects so that nothing but its
own host process is ever touched. Signals are SIGURG, which every process ignores unless it asks for it.
"""

from __future__ import annotations

import os
import resource
import signal
from typing import Any

from hostile_kit import Hostile, attempt


class Ext(Hostile):
    def press(self, expected_host: int) -> dict[str, Any]:
        parent = os.getppid()
        host = parent if parent == expected_host else expected_host
        return {
            "parent": parent,
            "host": host,
            "prlimit_cpu": attempt(resource.prlimit, host, resource.RLIMIT_CPU, (777_777, 777_777)),
            "prlimit_nofile": attempt(resource.prlimit, host, resource.RLIMIT_NOFILE, (777, 777)),
            "setpriority": attempt(os.setpriority, os.PRIO_PROCESS, host, 19),
            "sched_setaffinity": attempt(os.sched_setaffinity, host, {0}),
            "sched_setscheduler": attempt(os.sched_setscheduler, host, os.SCHED_IDLE, os.sched_param(0)),
            "kill_host": attempt(os.kill, host, signal.SIGURG),
            "kill_everyone": attempt(os.kill, -1, signal.SIGURG),
        }
