"""The host state store keeps enablement, grants, config overrides and the audit log across restarts."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

import symphony_core
from symphony_core._store._state import Grant, HostState, StateError

# Children import the same symphony_core as this test, whether or not it is installed.
_SRC = Path(symphony_core.__file__).resolve().parent.parent

_CONCURRENT_WRITER = """
import sys
from symphony_core._store._state import HostState

path, writer, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()  # every host opens the same new file at once, then they all write
with HostState(path) as state:
    for i in range(count):
        state.set_config_override(writer, f"key{i}", i, actor=writer)
        state.grant(writer, f"1.{i}", [{"kind": "network", "host": f"h{i}.example"}], actor=writer)
        print(state.record("tick", ext_id=writer, actor=writer, detail={"i": i}), flush=True)
"""

_ENDLESS_WRITER = """
import sys
from symphony_core._store._state import HostState

state = HostState(sys.argv[1])
i = 0
while True:
    print(state.record("tick", ext_id="ext.doomed", actor="host", detail={"i": i}), flush=True)
    i += 1
"""


@contextmanager
def _host_process(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``script`` as a separate host process, killed on the way out if it is still running."""
    pythonpath = [str(_SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    command = [sys.executable, "-c", script, *args]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            yield process
        finally:
            process.kill()


def _integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        result: str = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return result


def test_the_state_file_and_its_folders_are_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "home" / "symphony" / "state.sqlite"
    with HostState(path) as state:
        assert state.enablement() == {}
        assert state.audit_log() == []
    assert path.is_file()
    assert _integrity(path) == "ok"


def test_an_extension_is_enabled_until_someone_disables_it(tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        assert state.is_enabled("ext.a")
        state.set_enabled("ext.a", False, actor="alice")
        state.set_enabled("ext.b", True, actor="alice")
        assert not state.is_enabled("ext.a")
        assert state.enablement() == {"ext.a": False, "ext.b": True}
        state.set_enabled("ext.a", True, actor="bob")
        assert state.is_enabled("ext.a")
        assert [(r.event, r.ext_id, r.actor) for r in state.audit_log()] == [
            ("disabled", "ext.a", "alice"),
            ("enabled", "ext.b", "alice"),
            ("enabled", "ext.a", "bob"),
        ]


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    permissions = [{"kind": "network", "hosts": ["api.example"]}, {"kind": "files", "paths": ["~/x"]}]
    with HostState(path) as state:
        state.set_enabled("ext.a", False, actor="cli")
        state.grant("ext.a", "1.0.0", permissions, actor="alice")
        state.set_config_override("ext.a", "threshold", 0.5, actor="alice")
        state.set_config_override("ext.a", "labels", {"x": [1, None, "y"]}, actor="alice")
        state.record("loaded", ext_id="ext.a", actor="host", detail={"ms": 12})
        state.record("started", actor="host")
        before = state.audit_log()

    with HostState(path) as state:
        assert state.enablement() == {"ext.a": False}
        grant = state.granted("ext.a", "1.0.0")
        assert grant is not None
        assert (grant.ext_id, grant.version, grant.permissions, grant.granted_by) == (
            "ext.a",
            "1.0.0",
            permissions,
            "alice",
        )
        assert grant.granted_at.utcoffset() == timedelta(0)
        assert state.config_overrides("ext.a") == {"labels": {"x": [1, None, "y"]}, "threshold": 0.5}
        assert state.audit_log() == before
    assert [(r.seq, r.event, r.ext_id, r.detail) for r in before] == [
        (1, "disabled", "ext.a", {}),
        (2, "granted", "ext.a", {"version": "1.0.0", "permissions": permissions}),
        (3, "config_set", "ext.a", {"key": "threshold"}),
        (4, "config_set", "ext.a", {"key": "labels"}),
        (5, "loaded", "ext.a", {"ms": 12}),
        (6, "started", None, {}),
    ]
    assert all(r.at.utcoffset() == timedelta(0) for r in before)


def test_a_new_grant_replaces_that_versions_grant_and_becomes_the_latest(tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        assert state.latest_grant("ext.a") is None
        state.grant("ext.a", "1.0", [{"kind": "network"}], actor="alice")
        state.grant("ext.a", "2.0", [{"kind": "network"}, {"kind": "gpu"}], actor="bob")
        state.grant("ext.b", "9.0", [], actor="bob")
        latest = state.latest_grant("ext.a")
        assert isinstance(latest, Grant)
        assert (latest.version, latest.granted_by) == ("2.0", "bob")

        state.grant("ext.a", "1.0", [{"kind": "files"}], actor="carol")
        regranted = state.granted("ext.a", "1.0")
        assert regranted is not None
        assert (regranted.permissions, regranted.granted_by) == ([{"kind": "files"}], "carol")
        assert state.latest_grant("ext.a") == regranted
        assert state.granted("ext.a", "3.0") is None


def test_revoking_removes_the_grants_of_every_version(tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        state.grant("ext.a", "1.0", [{"kind": "network"}], actor="alice")
        state.grant("ext.a", "2.0", [{"kind": "network"}], actor="alice")
        state.grant("ext.b", "1.0", [{"kind": "network"}], actor="alice")
        state.revoke("ext.a", actor="bob")
        assert state.granted("ext.a", "1.0") is None
        assert state.latest_grant("ext.a") is None
        assert state.granted("ext.b", "1.0") is not None
        revoked = state.audit_log("ext.a")[-1]
        assert (revoked.event, revoked.actor, revoked.detail) == (
            "revoked",
            "bob",
            {"versions": ["1.0", "2.0"]},
        )


def test_config_overrides_can_be_set_cleared_and_replaced(tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        state.set_config_override("ext.a", "threshold", 0.5, actor="alice")
        state.set_config_override("ext.a", "threshold", 0.7, actor="alice")
        state.set_config_override("ext.a", "mode", "fast", actor="alice")
        state.set_config_override("ext.b", "mode", "slow", actor="alice")
        assert state.config_overrides("ext.a") == {"mode": "fast", "threshold": 0.7}

        state.clear_config_override("ext.a", "threshold", actor="bob")
        assert state.config_overrides("ext.a") == {"mode": "fast"}

        state.replace_config_overrides("ext.a", {"retries": 3, "names": ["x"]}, actor="carol")
        assert state.config_overrides("ext.a") == {"names": ["x"], "retries": 3}
        assert state.config_overrides("ext.b") == {"mode": "slow"}
        assert state.config_overrides("ext.unknown") == {}
        assert [(r.event, r.detail) for r in state.audit_log("ext.a")][-2:] == [
            ("config_cleared", {"key": "threshold"}),
            ("config_replaced", {"keys": ["names", "retries"]}),
        ]


def test_a_rejected_write_changes_nothing(tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        state.replace_config_overrides("ext.a", {"mode": "fast"}, actor="alice")
        before = state.audit_log()
        with pytest.raises(TypeError):
            state.replace_config_overrides("ext.a", {"good": 1, "bad": object()}, actor="bob")
        with pytest.raises(TypeError):
            state.record("odd", actor="bob", detail={"bad": object()})
        assert state.config_overrides("ext.a") == {"mode": "fast"}
        assert state.audit_log() == before
        state.record("still.writable", actor="bob")


def test_the_audit_log_filters_by_extension_and_pages_by_seq(tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        seqs = [state.record("tick", ext_id=f"ext.{i % 2}", actor="host", detail={"i": i}) for i in range(6)]
        assert seqs == [1, 2, 3, 4, 5, 6]
        assert [r.seq for r in state.audit_log("ext.1")] == [2, 4, 6]
        assert [r.seq for r in state.audit_log(since_seq=2, limit=3)] == [3, 4, 5]
        assert [r.seq for r in state.audit_log("ext.0", since_seq=1)] == [3, 5]
        assert state.audit_log(since_seq=6) == []


def test_threads_can_share_one_host_state(tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        seqs: list[int] = []

        def write(thread: int) -> None:
            for i in range(20):
                seqs.append(state.record("tick", ext_id=f"ext.{thread}", actor="host", detail={"i": i}))
                state.is_enabled(f"ext.{thread}")

        threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(seqs) == list(range(1, 81))
        assert [r.seq for r in state.audit_log()] == list(range(1, 81))


def test_concurrent_hosts_do_not_corrupt_the_state(tmp_path: Path) -> None:
    path, writers, count = tmp_path / "state.sqlite", ["ext.w0", "ext.w1", "ext.w2", "ext.w3"], 15
    acknowledged = {}
    with ExitStack() as stack:
        processes = {
            writer: stack.enter_context(_host_process(_CONCURRENT_WRITER, str(path), writer, str(count)))
            for writer in writers
        }
        for process in processes.values():
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
        for process in processes.values():
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for writer, process in processes.items():
            out, _ = process.communicate(timeout=60)
            assert process.returncode == 0
            acknowledged[writer] = [int(line) for line in out.split()]

    assert _integrity(path) == "ok"
    with HostState(path) as state:
        log = state.audit_log()
        assert len(log) == len({r.seq for r in log}) == 3 * count * len(writers)
        ticks = {r.seq: (r.ext_id, r.detail["i"]) for r in log if r.event == "tick"}
        for writer in writers:
            assert [ticks.get(seq) for seq in acknowledged[writer]] == [(writer, i) for i in range(count)]
            assert state.config_overrides(writer) == {f"key{i}": i for i in range(count)}
            latest = state.latest_grant(writer)
            assert latest is not None
            assert latest.version == f"1.{count - 1}"
            assert all(state.granted(writer, f"1.{i}") is not None for i in range(count))


def test_a_killed_host_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with _host_process(_ENDLESS_WRITER, str(path)) as process:
        assert process.stdout is not None
        acknowledged = [int(process.stdout.readline()) for _ in range(40)]
        process.kill()
        # Lines the child flushed before it died are still in the pipe; they count as acknowledged too.
        acknowledged += [int(line) for line in process.stdout.read().split()]
    assert process.returncode != 0

    assert _integrity(path) == "ok"
    with HostState(path) as state:
        stored = {r.seq: r.detail["i"] for r in state.audit_log("ext.doomed")}
        assert [stored.get(seq) for seq in acknowledged] == list(range(len(acknowledged)))
        state.record("recovered", actor="host")


def test_a_state_file_from_a_newer_symphony_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    HostState(path).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")

    with pytest.raises(StateError) as refused:
        HostState(path)
    message = str(refused.value)
    assert str(path) in message
    assert "newer Symphony" in message
    assert "upgrade symphony-sdk-core" in (refused.value.hint or "")


def test_a_state_file_of_the_first_schema_is_upgraded_in_place_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with HostState(path) as state:
        state.grant("ext.kept", "1.0", [{"type": "env", "names": ["HOME"]}], actor="alice")
        state.set_enabled("ext.off", False, actor="alice")
    with closing(sqlite3.connect(path)) as conn:  # back to what the first release wrote
        conn.execute("DROP TABLE quarantine")
        conn.execute("PRAGMA user_version = 1")

    with HostState(path) as state:
        assert state.granted("ext.kept", "1.0") is not None
        assert state.enablement() == {"ext.off": False}
        state.quarantine("ext.kept", "1.0", "3 failures in 60 s", actor="supervisor")
        assert state.quarantined() == {("ext.kept", "1.0"): "3 failures in 60 s"}
        assert state.lift_quarantine("ext.kept", actor="alice")
        assert not state.lift_quarantine("ext.kept", actor="alice")
        events = [record.event for record in state.audit_log("ext.kept")]
    assert events == ["granted", "quarantined", "quarantine_lifted"]


def test_a_garbage_state_file_is_refused_with_advice_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    garbage = b"this is not a database, only some bytes that happen to be here\n" * 100
    path.write_bytes(garbage)

    with pytest.raises(StateError) as refused:
        HostState(path)
    message = str(refused.value)
    assert str(path) in message
    assert "move it aside; the host will create a new one" in (refused.value.hint or "")
    assert path.read_bytes() == garbage


def test_records_written_without_waiting_for_the_disk_survive_their_process_being_killed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    script = (
        "import os, signal, sys\n"
        "from symphony_core._store._state import HostState\n"
        "state = HostState(sys.argv[1])\n"
        "state.record_many([('lifecycle', 'ext.a', 'host', {'to': 'active'})], durable=False)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(path)], check=False, timeout=60)

    assert killed.returncode == -9
    with HostState(path) as state:
        assert [(r.event, r.ext_id, r.detail) for r in state.audit_log()] == [
            ("lifecycle", "ext.a", {"to": "active"})
        ]
        state.record_many([("lifecycle", "ext.a", "host", {})], durable=False)
        state.set_enabled("ext.a", False, actor="cli")  # a change of the state: on disk when it returns
        with state._using() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL again after the record
    assert _integrity(path) == "ok"
