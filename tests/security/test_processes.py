"""Attacks on processes: the host's own, others of the same user, and what a worker leaves behind."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def processes_in(folder: Path) -> list[int]:
    """Processes running (not zombies) whose working folder is inside ``folder``.

    A worker works in its extension's cache folder and what it forks inherits that, so this finds what
    an extension started from the outside, whatever process namespace it sees itself in.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text(encoding="ascii").rpartition(")")[2].split()[0]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if state != "Z" and (cwd == str(folder) or cwd.startswith(f"{folder}/")):
            found.append(int(entry.name))
    return found


def end(pids: list[int], folder: Path) -> None:
    """Kill what an attack left running, by pid, once more checked to work inside ``folder``."""
    for pid in pids:
        if pid in processes_in(folder):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_cannot_change_its_hosts_limits_priority_cpus_or_signal_it(scene, steps) -> None:
    ext = "hostile.neighbour"

    outcome = scene.run(
        [
            {"op": "self", "label": "host before"},
            steps.call(ext, "press", "$host_pid", label="press"),
            {"op": "sleep", "seconds": 0.5, "label": "let signals arrive"},
            {"op": "self", "label": "host after"},
        ],
        setup=steps.start(ext),
        attackers=[ext],
        isolation="auto",
    )

    pressed = outcome.value("press")
    before, after = outcome.value("host before"), outcome.value("host after")
    went_through = {
        name: pressed[name] for name in pressed if isinstance(pressed[name], dict) and pressed[name]["ok"]
    }
    assert not went_through, f"these reached the host process: {went_through}\n{outcome.describe()}"
    for key in ("rlimit_cpu", "rlimit_nofile", "nice", "affinity", "scheduler", "signals"):
        assert before[key] == after[key], f"the host's {key} changed: {before[key]} -> {after[key]}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_double_forked_daemon_does_not_outlive_a_host_killed_with_sigkill(scene, steps) -> None:
    ext = "hostile.daemon"
    running = scene.launch(
        [
            steps.call(ext, "spawn", 40.0, label="spawn"),
            {"op": "sleep", "seconds": 60, "label": "wait to be killed"},
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )
    spawned = running.wait_for("spawn")
    assert spawned["ok"], f"the daemon could not be set up: {spawned}"
    before_kill = processes_in(scene.home)
    assert len(before_kill) >= 3, (
        f"expected the canary's worker, the attacker's and its daemon: {before_kill}"
    )

    running.kill()
    beats = scene.cache(ext) / "daemon.beats"
    deadline = time.monotonic() + 10
    survivors = processes_in(scene.home)
    while survivors and time.monotonic() < deadline:  # the kernel ends them as the host's death reaches them
        time.sleep(0.05)
        survivors = processes_in(scene.home)
    size = beats.stat().st_size
    end(survivors, scene.home)

    assert not survivors, (
        f"{len(survivors)} process(es) of the host's workers still run 10 s after the host was killed with "
        f"SIGKILL (pids {survivors}; the daemon says it is {spawned['value']} in its own view); its "
        f"heartbeat file holds {size} bytes"
    )


def test_a_worker_cannot_read_trace_or_take_files_from_its_host(scene, steps) -> None:
    ext = "hostile.misc"

    outcome = scene.run(
        [
            steps.call(ext, "proc_files", "$host_pid", label="proc files"),
            steps.call(ext, "trace", "$host_pid", label="trace"),
            steps.call(ext, "io_uring", label="io_uring"),
            steps.call(ext, "where", label="own environment"),
        ],
        setup=steps.start(ext),
        attackers=[ext],
        env={"ACME_CLOUD_TOKEN": scene.secret_text},
    )

    for label in ("proc files", "trace"):
        got = outcome.value(label)
        through = {name: result for name, result in got.items() if result["ok"]}
        assert not through, f"{label}: these reached the host process: {through}\n{outcome.describe()}"
    assert not outcome.value("io_uring")["ok"], outcome.describe()
    assert "ACME_CLOUD_TOKEN" not in outcome.value("own environment")["environ"]
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_fork_bomb_stops_at_the_workers_process_limit_and_leaves_nothing_behind(scene, steps) -> None:
    ext = "hostile.misc"

    outcome = scene.run(
        [
            steps.call(ext, "fork_bomb", 1200, 30.0, label="fork bomb"),
            {"op": "latency", "count": 10, "label": "canary during the bomb"},
            {"op": "stop", "ext": ext, "label": "stop"},
            {"op": "sleep", "seconds": 1, "label": "settle"},
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )

    bomb = outcome.step("fork bomb")
    started = bomb["value"]["started"] if bomb["ok"] else None
    leftovers = processes_in(scene.home)
    end(leftovers, scene.home)
    assert started is None or started < 1200, (
        f"all 1200 forks succeeded: no process limit\n{outcome.describe()}"
    )
    assert not leftovers, f"{len(leftovers)} processes of the fork bomb outlived its host: {leftovers[:10]}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_thread_storm_stops_at_the_workers_limit(scene, steps) -> None:
    ext = "hostile.misc"

    outcome = scene.run(
        [
            steps.call(ext, "thread_storm", 3000, 20.0, label="threads"),
            {"op": "latency", "count": 10, "label": "canary during the storm"},
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )

    storm = outcome.step("threads")
    started = storm["value"]["started"] if storm["ok"] else None
    assert started is None or started < 3000, f"all 3000 threads started: no task limit\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()
