"""A host process for the security tests: runs the steps it is given and reports what happened.

Run by the tests with the test environment's Python: ``python driver.py OPTIONS.json``. It creates a
``Host`` (``isolation``, ``call_budget`` and ``path`` from the options), grants and starts the canary,
runs the ``setup`` steps, takes a snapshot of what no extension may change (the state database, the
policy file, the other extensions' folders, anything in the host's worker bytecode that is not the
compiled code of its source), runs the attack's ``steps``, then
checks that it still answers (its extensions, the canary) and takes the snapshot again. The report is
written to the ``results`` file after every step, so a host that hangs or is killed still leaves what it
got to.

A step is ``{"op": ..., "label": ...}`` with the op's own fields (a call's argument ``"$host_pid"`` is
this process's pid); its record says whether it returned
(``value``) or raised (``error``: the class, its bases, whether it is a ``SymphonyError``, the message and
the extension it names).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

CANARY = "canary.echo"
CANARY_NOTE = "the canary's own note"

options: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
results = Path(options["results"])
report: dict[str, Any] = {"pid": os.getpid(), "steps": [], "final": None, "before": None, "after": None}
received: dict[str, int] = {"SIGURG": 0}


def save() -> None:
    part = results.with_suffix(".part")
    part.write_text(json.dumps(report, indent=1, default=repr), encoding="utf-8")
    os.replace(part, results)


def on_signal(number: int, frame: object) -> None:
    received[signal.Signals(number).name] += 1


signal.signal(signal.SIGURG, on_signal)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
save()

from symphony_core import Host, SymphonyError  # noqa: E402 - the signal handler is in place first

home = Path(options["home"])
path = [*options["path_first"], *sys.path] if options.get("path_first") else None
host = Host(home, isolation=options["isolation"], call_budget=options.get("call_budget"), path=path)
attackers = set(options.get("attackers", ()))
events: dict[str, int] = {}
background: dict[str, threading.Thread] = {}
finished: dict[str, dict[str, Any]] = {}


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON: containers element by element, frames and arrays by their shape."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) and depth < 8:
        return {str(key): plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)) and depth < 8:
        return [plain(item, depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value), "head": bytes(value[:200]).decode("latin-1")}
    shape = getattr(value, "shape", None)
    if shape is not None:
        return {"class": type(value).__name__, "shape": list(shape)}
    if hasattr(value, "as_json"):
        return plain(value.as_json(), depth + 1)
    return {"class": type(value).__name__, "repr": repr(value)[:500]}


def failure(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "mro": [cls.__name__ for cls in type(exc).__mro__],
        "symphony": isinstance(exc, SymphonyError),
        "message": str(exc)[:4000],
        "extension": getattr(exc, "extension", None),
    }


def measure() -> dict[str, Any]:
    """This host process as the kernel sees it: limits, priority, CPUs, memory, signals received."""
    with open("/proc/self/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {
        "pid": os.getpid(),
        "rlimit_cpu": list(resource.getrlimit(resource.RLIMIT_CPU)),
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "affinity": sorted(os.sched_getaffinity(0)),
        "scheduler": os.sched_getscheduler(0),
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the process that forked this one
        "maxrss_mib": int(fields["VmHWM"].split()[0]) // 1024,
        "rss_mib": int(fields["VmRSS"].split()[0]) // 1024,
        "signals": dict(received),
        "threads": threading.active_count(),
    }


def call(step: dict[str, Any]) -> Any:
    """Call an extension's method; an argument ``"$host_pid"`` is this process's pid."""
    args = [os.getpid() if arg == "$host_pid" else arg for arg in step.get("args", ())]
    return plain(host.call(step["ext"], step["method"], *args, **step.get("kwargs", {})))


def run(step: dict[str, Any]) -> Any:
    op, ext = step["op"], step.get("ext", "")
    if op == "grant":
        return plain(host.grant(ext))
    if op in ("start", "restart"):
        if op == "restart":
            host.deactivate(ext)
        host.start(ext)
        info = host.inspect(ext)
        return {"tier": info.tier, "state": str(info.state), "distribution": info.distribution}
    if op == "stop":
        return host.deactivate(ext)
    if op == "call":
        return call(step)
    if op == "inspect":
        return plain(host.inspect(ext))
    if op == "discover":
        return [
            {key: info.as_json()[key] for key in ("id", "distribution", "state", "problem")}
            for info in host.discover(rescan=True)
        ]
    if op == "config":
        resolved = host.config(ext)
        return None if resolved is None else plain(resolved.as_json())
    if op == "self":
        return measure()
    if op == "sleep":
        return time.sleep(step["seconds"])
    if op == "subscribe":
        events.setdefault(ext, 0)

        def count(name: str, data: Any, ext: str = ext) -> None:
            events[ext] += 1

        host.subscribe(ext, count)
        return None
    if op == "events":
        return dict(events)
    if op == "background":
        label = step["label"]

        def work() -> None:
            finished[label] = record(dict(step, op="call"))

        background[label] = threading.Thread(target=work, daemon=True)
        background[label].start()
        return None
    if op == "join":
        background[step["of"]].join(step.get("seconds"))
        return finished.get(step["of"], {"ok": False, "error": {"type": "still running"}})
    if op == "latency":
        times = []
        for _ in range(step.get("count", 20)):
            started = time.monotonic()
            host.call(CANARY, "echo", "ping")
            times.append(time.monotonic() - started)
        return {"max": max(times), "mean": sum(times) / len(times)}
    raise ValueError(f"unknown step {op!r}")


def record(step: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    entry: dict[str, Any] = {"label": step.get("label", step["op"]), "op": step["op"]}
    try:
        entry["value"] = run(step)
        entry["ok"] = True
    except BaseException as exc:  # the point is to see what reaches the host, BaseException included
        entry["ok"] = False
        entry["error"] = failure(exc)
    entry["seconds"] = round(time.monotonic() - started, 3)
    return entry


# A snapshot of what no extension may change


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def tree(folder: Path) -> str:
    """Every entry beneath ``folder``: its relative path, kind, and content (files) or target (links)."""
    if not folder.exists():
        return "absent"
    lines = []
    for root, folders, files in os.walk(folder):
        folders.sort()
        for name in sorted([*folders, *files]):
            path = Path(root, name)
            relative = path.relative_to(folder)
            if path.is_symlink():
                lines.append(f"{relative} -> {os.readlink(path)}")
            elif path.is_file():
                size = path.stat().st_size
                content = digest(path.read_bytes()) if size < (64 << 20) else f"{size} bytes"
                lines.append(f"{relative} {content}")
            elif path.is_dir():
                lines.append(f"{relative}/")
            else:
                lines.append(f"{relative} (special)")
    return digest("\n".join(lines).encode())


def foreign_bytecode(folder: Path) -> str:
    """What the shared bytecode cache holds that the host did not make: every entry but the folders and
    the ``.pyc`` files that are exactly the compiled code of the source file they are named after (the
    host compiles what workers import into it while they run)."""
    if not folder.exists():
        return "absent"
    tag = f".{sys.implementation.cache_tag}.pyc"
    foreign = []
    for root, folders, files in os.walk(folder):
        for name in sorted([*folders, *files]):
            path = Path(root, name)
            if path.is_dir() and not path.is_symlink():
                continue
            source = Path("/", path.parent.relative_to(folder), name.removesuffix(tag) + ".py")
            if not (
                name.endswith(tag) and path.is_file() and not path.is_symlink() and _compiled(path, source)
            ):
                foreign.append(
                    f"{path.relative_to(folder)} {digest(path.read_bytes()) if path.is_file() else '?'}"
                )
    return digest("\n".join(foreign).encode())


def _compiled(pyc: Path, source: Path) -> bool:
    import importlib.util
    import marshal

    try:
        data, code = pyc.read_bytes(), source.read_bytes()
        fresh = compile(code, str(source), "exec", dont_inherit=True, optimize=0)
    except (OSError, SyntaxError, ValueError):
        return False
    return data[:4] == importlib.util.MAGIC_NUMBER and marshal.loads(data[16:]) == fresh


def state(audit_upto: int | None) -> tuple[dict[str, str], int]:
    """The state database table by table (the audit log only up to ``audit_upto``: it grows), and the
    audit log's last sequence number."""
    file = home / "state.sqlite"
    if not file.exists():
        return {"state": "absent"}, 0
    found: dict[str, str] = {}
    connection = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        last = 0
        for table in sorted(tables):
            if table == "sqlite_sequence":
                continue
            if table == "audit":
                last = connection.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0]
                upto = last if audit_upto is None else audit_upto
                rows = connection.execute(
                    "SELECT * FROM audit WHERE seq <= ? ORDER BY seq", (upto,)
                ).fetchall()
            else:
                rows = sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                if table == "quarantine":  # an attacker's own workers failing is the host doing its job
                    rows = [row for row in rows if row[0] not in attackers]
            found[f"state.{table}"] = digest(repr(rows).encode())
    finally:
        connection.close()
    return found, last


def snapshot(audit_upto: int | None = None) -> dict[str, Any]:
    found, last = state(audit_upto)
    policy = home / "policy.toml"
    found["policy.toml"] = digest(policy.read_bytes()) if policy.exists() else "absent"
    found["config/"] = tree(home / "config")
    # The host compiles what its workers imported in the background: a file it is still writing would
    # look foreign, so the snapshot waits for what was submitted so far.
    from symphony_core._security._sandbox._bytecode import COMPILER

    COMPILER.wait()
    found["cache/worker-bytecode/"] = foreign_bytecode(home / "cache" / "worker-bytecode")
    extensions = home / "extensions"
    for folder in sorted(extensions.iterdir()) if extensions.exists() else ():
        if folder.name not in attackers:
            found[f"extensions/{folder.name}/"] = tree(folder)
    return {"items": found, "audit_last": last}


def main() -> None:
    if options.get("canary", True):
        (home / "extensions" / CANARY / "data").mkdir(parents=True, exist_ok=True)
        (home / "extensions" / CANARY / "data" / "note.txt").write_text(CANARY_NOTE, encoding="utf-8")
        options["setup"][:0] = [
            {"op": "grant", "ext": CANARY, "label": "canary grant"},
            {"op": "start", "ext": CANARY, "label": "canary start"},
        ]
    for step in options["setup"]:
        report["steps"].append(record(step))
        save()
    report["before"] = snapshot()
    save()
    for step in options["steps"]:
        report["steps"].append(record(step))
        save()
    started = time.monotonic()
    final: dict[str, Any] = {}
    checks = [("extensions", lambda: len(host.extensions()))]
    if options.get("canary", True):
        checks += [
            ("canary_echo", lambda: host.call(CANARY, "echo", "still here")),
            ("canary_note", lambda: host.call(CANARY, "note")),
        ]
    for name, check in checks:
        try:
            final[name] = plain(check())
        except BaseException as exc:
            final[name] = {"failed": failure(exc)}
    final["seconds"] = round(time.monotonic() - started, 3)
    final["self"] = measure()
    report["final"] = final
    report["after"] = snapshot(report["before"]["audit_last"])
    save()
    try:
        host.close()
        report["closed"] = True
    except BaseException as exc:
        report["closed"] = failure(exc)
    save()


main()
