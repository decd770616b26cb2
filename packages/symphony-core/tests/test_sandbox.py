"""The isolated tier on this machine: what the kernel offers, and workers that it really restricts.

Nothing is mocked: the probe asks the kernel, workers are real processes that restrict themselves with
Landlock, namespaces, seccomp and cgroups, and every escape test is a real attempt from inside a worker.
A test is skipped only when the probe says this kernel cannot enforce what it is about.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from symphony_core._model._errors import ConfigError, Quarantined, RemoteError, WorkerCrashed, WorkerTimeout
from symphony_core._model._permissions import EnvVars, FileRead, FileWrite, NetConnect, Permission, Subprocess
from symphony_core._security._sandbox import _landlock
from symphony_core._security._sandbox._bulk import ARRAY, FILE, MEMFD, Codec
from symphony_core._security._sandbox._cgroups import Cgroups, places
from symphony_core._security._sandbox._pool import Pool, PoolEvent, PoolState, Supervisor
from symphony_core._security._sandbox._probe import probe
from symphony_core._security._sandbox._process import WorkerProcess
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._security._sandbox._protocol import (
    PROTOCOL,
    Channel,
    Failure,
    Limits,
    Profile,
    Reply,
    Setup,
)
from symphony_core._store._home import Home

LINUX = sys.platform.startswith("linux")
CAPABILITIES = probe()
pytestmark = pytest.mark.skipif(
    not LINUX, reason="the isolated tier needs Linux; the probe reports nothing enforced"
)


def needs(mechanism: str) -> pytest.MarkDecorator:
    """Skip unless the probe found ``mechanism`` here, with the probe's own reason."""
    found = CAPABILITIES.mechanisms.get(mechanism)
    reason = f"this kernel cannot: {found.detail if found else 'not probed'}"
    return pytest.mark.skipif(found is None or not found.available, reason=reason)


# The probe


def test_the_probe_reports_the_landlock_abi_the_kernel_gives_a_fresh_process() -> None:
    code = (
        "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long; "
        "print(max(0, libc.syscall(444, None, 0, 1)))"  # landlock_create_ruleset(NULL, 0, VERSION)
    )
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("the system call number 444 is only checked on x86-64 and arm64 here")
    answered = int(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )

    assert CAPABILITIES.landlock_abi == answered
    assert CAPABILITIES.has("landlock") is (answered > 0)


def test_the_probe_never_claims_a_concern_whose_mechanism_it_did_not_find() -> None:
    enforced = CAPABILITIES.enforced()
    needed = {
        "files": "landlock",
        "programs": "landlock",
        "network": "network_namespace",
        "system_calls": "seccomp",
        "privileges": "no_new_privs",
        "memory": "cgroup_memory",
    }

    for concern, mechanism in needed.items():
        assert (concern in enforced) is CAPABILITIES.has(mechanism), concern
    assert ("tcp_ports" in enforced) is (CAPABILITIES.landlock_abi >= 4)
    assert ("signals_and_abstract_sockets" in enforced) is (CAPABILITIES.landlock_abi >= 6)
    assert any("host names" in gap for gap in CAPABILITIES.not_enforced()), (
        "the port-only network rule is said"
    )


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux's unshare is not installed")
def test_the_probe_agrees_with_util_linux_about_user_and_network_namespaces() -> None:
    def works(*flags: str) -> bool:
        return subprocess.run(["unshare", *flags, "true"], capture_output=True, check=False).returncode == 0

    assert CAPABILITIES.has("user_namespace") is works("--user")
    both, alone = works("--user", "--net"), works("--net")
    assert CAPABILITIES.has("network_namespace") is (both or (CAPABILITIES.root and alone))


@needs("cgroup_memory")
def test_a_cgroup_the_probe_offers_holds_the_memory_limit_it_was_given_and_is_removed() -> None:
    groups = Cgroups.create("acme.probe", memory=300 << 20, tasks=None)
    try:
        (folder,) = groups.folders
        limit_file = folder / ("memory.max" if (folder / "memory.max").exists() else "memory.limit_in_bytes")
        assert int(limit_file.read_text()) == 300 << 20
        assert "memory" in groups.enforced
    finally:
        groups.close()
    assert not folder.exists()


def test_a_ruleset_only_allows_the_rights_the_abi_has() -> None:
    assert _landlock.handled_fs(1) == (1 << 13) - 1
    assert _landlock.handled_fs(3) & _landlock.TRUNCATE
    assert not _landlock.handled_fs(4) & _landlock.IOCTL_DEV
    assert _landlock.handled_fs(7) & _landlock.IOCTL_DEV
    assert _landlock.handled_fs(0) == 0


def test_doctor_shows_what_the_probe_found_and_what_is_not_enforced(venv, home) -> None:
    report = venv.symphony_json(home, "doctor")

    sandbox = report["sandbox"]
    assert sandbox["landlock_abi"] == CAPABILITIES.landlock_abi
    assert {name: m["available"] for name, m in sandbox["mechanisms"].items()} == {
        name: m.available for name, m in CAPABILITIES.mechanisms.items()
    }
    assert sandbox["enforced"].keys() == CAPABILITIES.enforced().keys()
    assert any("host names" in gap for gap in sandbox["not_enforced"])
    assert "not a sandbox" in report["enforcement"]["guard"]

    people = venv.symphony(home, "doctor")
    assert people.returncode == 0, people.stderr
    assert "not enforced" in people.stdout
    assert f"landlock: {'yes' if CAPABILITIES.has('landlock') else 'no'}" in people.stdout


# Workers: one real extension, restricted by the kernel, trying to get out

PROBE_EXTENSION = r"""
import ctypes, errno, os, signal, socket, subprocess, time

from symphony_core import Extension
from symphony_core._model._errors import ConfigError


def _errno_of(call):
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0


class Probe(Extension):
    def activate(self, context):
        self.context = context
        self.activated_in = int(os.readlink("/proc/self"))  # as the host sees it

    def echo(self, *values, **named):
        return [list(values), named]

    def publish_many(self, count, fail=False):
        for n in range(count):
            self.context.publish("many", n)
        if fail:
            raise ValueError("published, then failed")
        return count

    def pid(self):
        return self.activated_in

    def pid_inside(self):
        return os.getpid()

    def read(self, path):
        with open(path, encoding="utf-8") as file:
            return file.read()

    def write(self, path, text):
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return True

    def listdir(self, path):
        return sorted(os.listdir(path))

    def libc_open(self, path, flags=os.O_RDONLY):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.open(path.encode(), flags, 0o600)
        if fd < 0:
            return ctypes.get_errno()
        os.close(fd)
        return 0

    def connect(self, port, host="127.0.0.1"):
        with socket.create_connection((host, port), timeout=5) as connection:
            return connection.recv(64).decode()

    def bind(self, port):
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            return server.getsockname()[1]

    def unix_socket(self, path):
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
        return True

    def run(self, *command):
        return subprocess.run(list(command), capture_output=True, text=True, check=True).stdout

    def environ(self):
        return dict(os.environ)

    def status(self):
        with open("/proc/self/status", encoding="ascii") as file:
            return dict(line.rstrip("\n").split(":\t", 1) for line in file if ":\t" in line)

    def signal_host(self, pid):
        return _errno_of(lambda: os.kill(pid, 0))

    def ptrace_host(self, pid):
        libc = ctypes.CDLL(None, use_errno=True)
        return 0 if libc.ptrace(16, pid, None, None) == 0 else ctypes.get_errno()  # PTRACE_ATTACH

    def type_into_terminal(self):
        import fcntl, termios

        return _errno_of(lambda: fcntl.ioctl(0, termios.TIOCSTI, b"x"))

    def new_namespace(self):
        libc = ctypes.CDLL(None, use_errno=True)
        return 0 if libc.unshare(0x10000000 | 0x40000000) == 0 else ctypes.get_errno()

    def fork_bomb(self, tries):
        children, refused = [], None
        for _ in range(tries):
            try:
                pid = os.fork()
            except OSError as exc:
                refused = errno.errorcode.get(exc.errno, str(exc.errno))
                break
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        return [len(children), refused]

    def hog(self, megabytes):
        chunks = [b"x" * (16 << 20) for _ in range(megabytes // 16)]
        return len(chunks) * 16

    def spin(self):
        while True:
            pass

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def sleepy_pid(self, seconds):
        time.sleep(seconds)
        return int(os.readlink("/proc/self"))

    def die(self, code):
        os._exit(code)

    def fail(self):
        raise ValueError("the extension's own bug")

    def refuse(self):
        raise ConfigError("the threshold is too low", extension=self.context.id, hint="raise it above 3")

    async def later(self, value):
        import asyncio

        await asyncio.sleep(0.01)
        return value * 2

    def _pipes(self, mode):
        import stat

        for fd in range(3, 256):
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl_mode(fd) == mode:
                    yield fd
            except OSError:
                continue

    def deafen(self):
        # keeps the host's request pipe open, but reads another one from now on: the host's next
        # request sits in the pipe unread, and a big one can never be written whole
        for fd in list(self._pipes(os.O_RDONLY)):
            self.kept = os.dup(fd)
            os.dup2(os.pipe()[0], fd)
        return True

    def hang_up(self, seconds):
        # closes every pipe it could answer on, and lives on without answering
        for fd in list(self._pipes(os.O_WRONLY)):
            os.close(fd)
        time.sleep(seconds)


def fcntl_mode(fd):
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
"""
EXTENSION_ID = "acme.probe"


@pytest.fixture(scope="module")
def extension_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the test extension's package, ``acme_probe``."""
    folder = tmp_path_factory.mktemp("code")
    (folder / "acme_probe").mkdir()
    (folder / "acme_probe" / "__init__.py").write_text(PROBE_EXTENSION, encoding="utf-8")
    return folder


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A folder with a ``secret.txt`` no grant covers, a ``granted`` folder, and the Symphony home."""
    (tmp_path / "secret.txt").write_text("do not read", encoding="utf-8")
    (tmp_path / "granted").mkdir()
    (tmp_path / "granted" / "input.txt").write_text("granted text", encoding="utf-8")
    return tmp_path


def spec_for(place: Path, code: Path, *permissions: Permission, **options: Any) -> WorkerSpec:
    return WorkerSpec(
        extension=EXTENSION_ID,
        entry_point="acme_probe:Probe",
        home=Home(place / "home"),
        permissions=permissions,
        path=(str(code),),
        **options,
    )


@pytest.fixture
def start(place: Path, extension_code: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers of the test extension with the given permissions; each is killed at the end."""
    started: list[WorkerProcess] = []

    def starter(*permissions: Permission, **options: Any) -> WorkerProcess:
        worker = WorkerProcess.start(spec_for(place, extension_code, *permissions, **options), timeout=60)
        started.append(worker)
        return worker

    yield starter
    for worker in started:
        worker.kill()


def refused(worker: WorkerProcess, method: str, *args: Any) -> RemoteError:
    """Call a method that must fail inside the worker, and return the error the host got."""
    with pytest.raises(RemoteError) as failure:
        worker.call(method, args)
    return failure.value


@pytest.fixture
def listener() -> Iterator[Callable[[], int]]:
    """Start TCP servers on 127.0.0.1 that greet each client with ``hello``; returns their ports."""
    servers: list[socket.socket] = []
    stop = threading.Event()

    def serve(server: socket.socket) -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                continue
            with client:
                client.sendall(b"hello")

    def open_one() -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)
        threading.Thread(target=serve, args=(server,), daemon=True).start()
        port: int = server.getsockname()[1]
        return port

    yield open_one
    stop.set()
    for server in servers:
        server.close()


def test_a_worker_answers_from_its_own_process_with_its_extension_activated(start) -> None:
    worker = start()

    assert worker.call("echo", (1, "two"), {"three": [3.0, None]}) == [[1, "two"], {"three": [3.0, None]}]
    assert worker.call("pid") == worker.pid != os.getpid()
    assert worker.call("pid_inside") == 2, "process 2 of a PID namespace of its own, under a reaper"
    assert worker.call("later", (21,)) == 42


def test_a_worker_started_from_a_thread_that_has_ended_keeps_running(start) -> None:
    started: list[WorkerProcess] = []
    thread = threading.Thread(target=lambda: started.append(start()))
    thread.start()
    thread.join()
    task = Path(f"/proc/self/task/{thread.native_id}")
    deadline = time.monotonic() + 10
    while task.exists():  # the thread has returned; its exit, which sends a parent-death signal, ends here
        assert time.monotonic() < deadline, "the thread never ended"
        time.sleep(0.01)

    assert started[0].call("echo", ("alive",)) == [["alive"], {}]


def test_a_worker_reports_what_it_enforces_and_never_more_than_the_probe_found(start) -> None:
    enforced = start().enforced

    assert enforced["no_new_privs"] == "set"
    assert ("NOT" not in enforced["landlock"]) is CAPABILITIES.has("landlock")
    assert ("NOT" not in enforced["seccomp"]) is CAPABILITIES.has("seccomp")
    assert ("no network" in enforced["network"]) is CAPABILITIES.has("network_namespace")
    assert ("NOT" not in enforced.get("cgroup_memory", "NOT")) is CAPABILITIES.has("cgroup_memory")


# Files


@needs("landlock")
def test_python_open_of_a_file_outside_the_grant_is_refused_by_the_kernel(start, place) -> None:
    worker = start(FileRead(paths=(str(place / "granted"),), reason="reads its inputs"))

    error = refused(worker, "read", str(place / "secret.txt"))

    assert (error.builtin, error.errno) == ("PermissionError", errno.EACCES)
    assert worker.call("read", (str(place / "granted" / "input.txt"),)) == "granted text"


@needs("landlock")
def test_libc_open_through_ctypes_is_refused_outside_the_grant(start, place) -> None:
    worker = start(FileRead(paths=(str(place / "granted"),), reason="reads its inputs"))

    assert worker.call("libc_open", (str(place / "secret.txt"),)) == errno.EACCES
    assert worker.call("libc_open", ("/etc/passwd",)) == errno.EACCES
    assert worker.call("libc_open", (str(place / "granted" / "input.txt"),)) == 0


@needs("landlock")
def test_writing_outside_the_grant_is_refused_and_inside_it_works(start, place) -> None:
    worker = start(FileWrite(paths=("{data}",), reason="keeps its results"))
    data = place / "home" / "extensions" / EXTENSION_ID / "data"

    error = refused(worker, "write", str(place / "planted.txt"), "x")
    assert error.builtin == "PermissionError"
    assert not (place / "planted.txt").exists()
    assert worker.call("write", (str(data / "result.txt"), "done")) is True
    assert (data / "result.txt").read_text(encoding="utf-8") == "done"
    assert worker.call("write", (str(worker.spec.cache_dir / "cached.txt"), "own cache")) is True


@needs("landlock")
def test_a_symlink_in_a_granted_folder_does_not_lead_outside_it(start, place) -> None:
    (place / "granted" / "link").symlink_to(place / "secret.txt")
    worker = start(FileRead(paths=(str(place / "granted"),), reason="reads its inputs"))

    assert refused(worker, "read", str(place / "granted" / "link")).builtin == "PermissionError"


@needs("landlock")
def test_a_glob_grant_is_widened_to_its_folder_and_the_worker_says_so(start, place) -> None:
    worker = start(FileRead(paths=(str(place / "granted" / "*.txt"),), reason="reads text files"))

    assert worker.call("read", (str(place / "granted" / "input.txt"),)) == "granted text"
    assert any("cannot hold a glob" in note for note in worker.notes)
    assert refused(worker, "read", str(place / "secret.txt")).builtin == "PermissionError"


@needs("landlock")
def test_listing_a_folder_outside_the_grant_is_refused(start, place) -> None:
    worker = start()

    assert refused(worker, "listdir", str(place)).builtin == "PermissionError"


# Network


@needs("network_namespace")
def test_without_a_network_grant_nothing_on_the_host_is_reachable(start, listener) -> None:
    port = listener()
    worker = start()

    error = refused(worker, "connect", port)

    assert error.builtin in ("OSError", "PermissionError", "ConnectionRefusedError")
    assert error.errno in (errno.ENETUNREACH, errno.EACCES, errno.ECONNREFUSED)


@pytest.mark.skipif(CAPABILITIES.landlock_abi < 4, reason="TCP port rules need Landlock ABI >= 4")
def test_a_tcp_connect_to_a_port_that_was_not_granted_is_refused(start, listener) -> None:
    granted, other = listener(), listener()
    worker = start(NetConnect(hosts=(f"127.0.0.1:{granted}",), reason="talks to its service"))

    assert worker.call("connect", (granted,)) == "hello"
    error = refused(worker, "connect", other)
    assert (error.builtin, error.errno) == ("PermissionError", errno.EACCES)
    assert refused(worker, "bind", 0).builtin == "PermissionError"


@needs("seccomp")
def test_unix_sockets_are_refused_so_host_services_stay_out_of_reach(start, tmp_path) -> None:
    path = str(tmp_path / "service.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()
    try:
        worker = start(FileWrite(paths=(str(tmp_path),), reason="uses the service"))
        error = refused(worker, "unix_socket", path)
    finally:
        server.close()

    assert error.builtin == "PermissionError"


# Programs, environment, privileges


@needs("landlock")
def test_starting_a_program_without_a_subprocess_grant_is_refused(start) -> None:
    worker = start()

    assert refused(worker, "run", "true").builtin == "PermissionError"


@needs("landlock")
def test_a_granted_program_runs_and_others_do_not(start) -> None:
    worker = start(Subprocess(commands=("echo",), reason="prints"))

    assert worker.call("run", ("echo", "granted")) == "granted\n"
    assert refused(worker, "run", "true").builtin == "PermissionError"


def test_the_worker_sees_only_granted_environment_variables(start, monkeypatch) -> None:
    monkeypatch.setenv("ACME_TOKEN", "granted-value")
    monkeypatch.setenv("HOST_SECRET", "must-not-leak")
    worker = start(EnvVars(names=("ACME_TOKEN",), reason="authenticates"))

    seen = worker.call("environ")

    assert seen["ACME_TOKEN"] == "granted-value"
    assert "HOST_SECRET" not in seen
    assert set(seen) == {"ACME_TOKEN", "PATH", "HOME", "LANG", "TMPDIR", "POLARS_OOC_SPILL_DIR"}
    assert seen["TMPDIR"].startswith(str(worker.spec.cache_dir))


@needs("no_new_privs")
def test_the_worker_has_no_capabilities_and_no_new_privileges_even_when_the_host_is_root(start) -> None:
    status = start().call("status")

    assert status["NoNewPrivs"].strip() == "1"
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapBnd"], 16) == 0
    if CAPABILITIES.has("seccomp"):
        assert status["Seccomp"].strip() == "2"


@needs("seccomp")
def test_tracing_the_host_making_namespaces_and_typing_into_a_terminal_are_refused(start) -> None:
    worker = start()

    assert worker.call("ptrace_host", (os.getpid(),)) == errno.EPERM
    assert worker.call("new_namespace") == errno.EPERM
    assert worker.call("type_into_terminal") == errno.EPERM  # not ENOTTY: refused before the terminal check


@pytest.mark.skipif(CAPABILITIES.landlock_abi < 6, reason="signal scoping needs Landlock ABI >= 6")
def test_the_worker_cannot_signal_processes_outside_its_sandbox(start) -> None:
    # ESRCH: the host is not even visible from the worker's PID namespace; EPERM: Landlock's scoping
    assert start().call("signal_host", (os.getpid(),)) in (errno.ESRCH, errno.EPERM)


# Resources


@needs("cgroup_pids")
def test_a_fork_bomb_stops_at_the_process_limit_and_the_host_goes_on(start) -> None:
    worker = start(limits=Limits(tasks=32))

    made, refusal = worker.call("fork_bomb", (500,), timeout=60)

    assert made < 32
    assert refusal == "EAGAIN"
    assert worker.call("echo", ("still here",)) == [["still here"], {}]


@needs("cgroup_memory")
def test_a_memory_hog_is_killed_at_its_memory_limit_and_the_host_goes_on(start) -> None:
    worker = start(limits=Limits(memory=256 << 20))

    with pytest.raises(WorkerCrashed) as crash:
        worker.call("hog", (2048,), timeout=60)

    assert "over its memory limit" in str(crash.value)
    assert not worker.alive


def test_a_worker_that_spins_past_its_cpu_time_is_killed(start) -> None:
    worker = start(limits=Limits(cpu_seconds=1))

    with pytest.raises(WorkerCrashed) as crash:
        worker.call("spin", timeout=30)

    assert "out of CPU time" in str(crash.value)


# The protocol


def test_errors_come_back_with_their_type_message_and_hint(start) -> None:
    worker = start()

    bug = refused(worker, "fail")
    assert (bug.remote_type, bug.builtin) == ("builtins.ValueError", "ValueError")
    assert "the extension's own bug" in str(bug)
    assert "ValueError" in bug.remote_traceback
    with pytest.raises(ConfigError) as config:
        worker.call("refuse")
    assert (config.value.message, config.value.hint) == (
        "the threshold is too low",
        "the extension says: raise it above 3",
    )
    assert config.value.extension == EXTENSION_ID
    assert worker.call("echo", ("after errors",)) == [["after errors"], {}]


def test_a_call_that_overruns_its_time_out_kills_the_worker(start) -> None:
    worker = start()

    with pytest.raises(WorkerTimeout):
        worker.call("sleep", (30,), timeout=0.5)

    assert not worker.alive
    with pytest.raises(WorkerCrashed):
        worker.call("echo", (1,))


def test_a_crash_is_reported_with_its_exit_status(start) -> None:
    worker = start()

    with pytest.raises(WorkerCrashed) as crash:
        worker.call("die", (7,))

    assert crash.value.exit_code == 7
    assert "exited with status 7" in str(crash.value)


def test_values_the_protocol_cannot_carry_are_refused_before_anything_is_sent(start) -> None:
    worker = start()

    with pytest.raises(TypeError, match="cannot cross"):
        worker.call("echo", (object(),))

    assert worker.call("echo", (b"bytes", 1.5)) == [[b"bytes", 1.5], {}]


def test_a_worker_refuses_a_host_that_speaks_another_protocol_version(tmp_path) -> None:
    from_host, to_worker = os.pipe()
    from_worker, to_host = os.pipe()
    command = [
        sys.executable,
        "-I",
        "-B",
        "-m",
        "symphony_core._security._sandbox._worker",
        str(from_host),
        str(to_host),
    ]
    process = subprocess.Popen(command, pass_fds=(from_host, to_host), stderr=subprocess.DEVNULL)
    os.close(from_host)
    os.close(to_host)
    channel = Channel(from_worker, to_worker)
    try:
        channel.send(Setup(protocol=PROTOCOL + 1, host_pid=os.getpid(), profile=Profile(), inline_limit=0))
        answer = channel.receive(timeout=30)
        assert process.wait(timeout=30) == 2
    finally:
        channel.close()
        if process.poll() is None:
            process.kill()
            process.wait()

    assert isinstance(answer, Failure)
    assert f"speaks protocol {PROTOCOL}, not {PROTOCOL + 1}" in answer.message


def test_frames_carry_big_and_small_messages_in_order() -> None:
    read_fd, write_fd = os.pipe()
    channel = Channel(read_fd, write_fd)  # one pipe: what it sends comes back to it
    big = "x" * (3 << 20)
    sender = threading.Thread(
        target=lambda: [channel.send(Reply(id=n, value=v)) for n, v in ((1, big), (2, "s"))]
    )
    sender.start()

    first, second = channel.receive(timeout=10), channel.receive(timeout=10)
    sender.join()
    channel.close()

    assert isinstance(first, Reply)
    assert isinstance(second, Reply)
    assert (first.id, len(first.value), second.id, second.value) == (1, 3 << 20, 2, "s")


def test_waiting_for_a_frame_that_does_not_come_times_out() -> None:
    read_fd, write_fd = os.pipe()
    channel = Channel(read_fd, write_fd)

    with pytest.raises(TimeoutError):
        channel.receive(timeout=0.05)
    channel.close()


# Bulk data: what each side accepts (the values themselves are tested where numpy and polars are installed)


def test_the_host_maps_bulk_data_from_a_worker_only_from_a_sealed_memfd(tmp_path) -> None:
    pidfd = os.pidfd_open(os.getpid())
    host = Codec(side="host", exchange=str(tmp_path), inline_limit=0, peer_pidfd=pidfd)
    plain = os.open(tmp_path / "plain.npy", os.O_RDWR | os.O_CREAT, 0o600)
    unsealed = os.memfd_create("unsealed", os.MFD_ALLOW_SEALING)
    try:
        for fd in (plain, unsealed):
            with pytest.raises(ValueError, match="not a sealed memfd"):
                host.decode(ARRAY | MEMFD, memoryview(b"%d" % fd))
        with pytest.raises(ValueError, match="does not accept"):
            host.decode(ARRAY | FILE, memoryview(b"h0123456789abcdef.npy"))
    finally:
        os.close(plain)
        os.close(unsealed)
        os.close(pidfd)


def test_a_worker_reads_only_files_the_host_named_in_its_exchange_folder(tmp_path) -> None:
    worker = Codec(side="worker", exchange=str(tmp_path), inline_limit=0)

    for name in ("../secret.npy", "/etc/passwd", "h0123.npy", "x0123456789abcdef.npy"):
        with pytest.raises(ValueError, match="not a file the host writes"):
            worker.decode(ARRAY | FILE, memoryview(name.encode()))
    with pytest.raises(ValueError, match="does not accept"):
        worker.decode(ARRAY | MEMFD, memoryview(b"3"))


# Pools: warm workers, restarts, quarantine


@pytest.fixture
def pools(place: Path, extension_code: Path) -> Iterator[Callable[..., Pool]]:
    """Start pools of the test extension; each is closed at the end."""
    started: list[Pool] = []

    def starter(*permissions: Permission, **options: Any) -> Pool:
        pool = Pool(spec_for(place, extension_code, *permissions), **options).start()
        started.append(pool)
        return pool

    yield starter
    for pool in started:
        pool.close()


def wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the pool did not get there in time"
        time.sleep(0.02)


def test_a_pool_hands_out_a_worker_that_is_already_restricted_and_activated(pools) -> None:
    pool = pools(size=2)
    wait_for(lambda: pool.status().ready == 2)

    with pool.worker() as worker:
        assert worker.call("pid") == worker.pid
        assert worker.enforced["no_new_privs"] == "set"
    assert {"echo", "read", "later"} <= set(pool.methods)
    assert not {"activate", "deactivate", "context"} & set(pool.methods)
    status = pool.status()
    assert (status.state, status.ready, status.busy, status.failures) == (PoolState.READY, 2, 0, 0)
    assert len(set(status.pids)) == 2


def test_two_calls_at_once_are_served_by_two_workers_of_a_pool(pools) -> None:
    pool = pools(size=2)
    wait_for(lambda: pool.status().ready == 2)
    pids: list[int] = []

    threads = [threading.Thread(target=lambda: pids.append(pool.call("sleepy_pid", 0.5))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(pids) == sorted(pool.status().pids)


def test_a_crashed_worker_is_replaced_and_the_next_call_works(pools) -> None:
    events: list[PoolEvent] = []
    pool = pools(backoff=0.05, on_event=events.append)
    first = pool.status().pids

    with pytest.raises(WorkerCrashed):
        pool.call("die", 7)
    assert pool.call("echo", "again") == [["again"], {}]

    assert pool.status().pids != first
    assert [event.action for event in events] == ["crashed", "restarted"]
    assert pool.status().failures == 1


def test_an_extension_that_keeps_crashing_is_quarantined_with_the_reason(pools) -> None:
    pool = pools(crash_limit=2, crash_window=60, backoff=0.05)

    for _ in range(2):
        with pytest.raises(WorkerCrashed):
            pool.call("die", 9)
    status = pool.status()

    assert status.state is PoolState.QUARANTINED
    assert "2 failures within 60 s" in (status.reason or "")
    assert "exited with status 9" in (status.reason or "")
    with pytest.raises(Quarantined, match="exited with status 9"):
        pool.call("echo", 1)
    time.sleep(0.3)
    assert pool.status().ready == 0, "a quarantined extension is not restarted"

    pool.reset()
    assert pool.call("echo", "back") == [["back"], {}]
    assert pool.status().state is PoolState.READY


def test_every_pool_call_has_a_time_out_and_an_overrun_worker_is_replaced(pools) -> None:
    pool = pools(call_timeout=0.5, backoff=0.05)

    with pytest.raises(WorkerTimeout):
        pool.call("sleep", 30)

    assert pool.call("echo", "fresh") == [["fresh"], {}]
    assert "overran" in (pool.status().reason or "") or "did not finish" in (pool.status().reason or "")


def test_a_pool_whose_extension_cannot_start_raises_and_runs_nothing(place, extension_code) -> None:
    spec = WorkerSpec(
        extension="acme.missing",
        entry_point="acme_missing:Nope",
        home=Home(place / "home"),
        path=(str(extension_code),),
    )
    pool = Pool(spec)

    with pytest.raises(RemoteError, match="ModuleNotFoundError"):
        pool.start()
    assert pool.status().state is PoolState.CLOSED


def test_a_supervisor_keeps_pools_apart_and_reports_each(place, extension_code) -> None:
    supervisor = Supervisor(backoff=0.05)
    try:
        for name in ("acme.one", "acme.two"):
            spec = WorkerSpec(
                extension=name,
                entry_point="acme_probe:Probe",
                home=Home(place / "home"),
                path=(str(extension_code),),
            )
            supervisor.add(spec)
        with pytest.raises(WorkerCrashed):
            supervisor.call("acme.one", "die", 3)

        assert supervisor.call("acme.two", "echo", 2) == [[2], {}]
        assert {status.extension: status.failures for status in supervisor.statuses()} == {
            "acme.one": 1,
            "acme.two": 0,
        }
    finally:
        supervisor.close()
    assert supervisor.statuses() == []


def test_a_worker_killed_while_idle_is_noticed_and_replaced(pools) -> None:
    events: list[PoolEvent] = []
    pool = pools(backoff=0.05, on_event=events.append)
    (pid,) = pool.status().pids

    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pool.status().ready == 1 and pool.status().pids != (pid,))

    assert [event.action for event in events] == ["crashed", "restarted"]
    assert "exit status -9" in (events[0].reason or "")


def test_closing_a_pool_during_a_call_stops_that_call_and_every_worker(pools) -> None:
    pool = pools()
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            pool.call("sleep", 30)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: pool.status().busy == 1)
    pool.close()
    caller.join(10)

    assert isinstance(outcome[0], WorkerCrashed)
    assert pool.status().state is PoolState.CLOSED
    assert pool.status().pids == ()


# The host runs installed extensions isolated

ISOLATED_EXTENSION = """
import os

from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        self.context = context
        self.worker = os.getpid()

    def where(self):
        return [self.worker, os.getpid(), self.context.id]

    def read(self, path):
        with open(path, encoding="utf-8") as file:
            return file.read()

    def die(self):
        os._exit(5)
"""
READS = """
[[permissions]]
type = "fs.read"
paths = ["{data}"]
reason = "Reads the tables you put in its data folder."
"""


def allow(home: Path, ext_id: str) -> None:
    """A host policy that grants ``ext_id`` what it asks for, unattended."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text(
        f'[[rules]]\naction = "allow"\nextension = "{ext_id}"\n', encoding="utf-8"
    )


def isolated_extension(make: Any, ext_id: str) -> Any:
    return make.extension(ext_id, code=ISOLATED_EXTENSION, manifest_text=make.manifest(ext_id, extra=READS))


@needs("landlock")
def test_an_isolated_host_runs_an_installed_extension_in_a_worker_the_kernel_restricts(
    install, make, home, hosts, tmp_path
) -> None:
    install(isolated_extension(make, "acme.isolated"))
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret", encoding="utf-8")
    data = home / "extensions" / "acme.isolated" / "data"
    data.mkdir(parents=True)
    (data / "table.csv").write_text("a,b\n", encoding="utf-8")
    allow(home, "acme.isolated")
    host = hosts(home, isolation="isolated")

    assert host("start", "acme.isolated") == "RemoteExtension"
    worker, serving, ext_id = host("call", "acme.isolated", "where")
    refused = host.refuses("call", "acme.isolated", "read", str(secret))

    assert worker == serving
    assert ext_id == "acme.isolated"
    assert refused["error"] == "RemoteError"
    assert "PermissionError" in refused["message"]
    assert host("call", "acme.isolated", "read", str(data / "table.csv")) == "a,b\n"
    assert host.info("acme.isolated")["state"] == "active"
    assert host("modules", "acme_isolated") == [], "never imported by the host"


@needs("landlock")
def test_a_host_by_default_runs_what_its_policy_trusts_in_process_and_isolates_every_other_extension(
    install, make, home, hosts, tmp_path
) -> None:
    install(isolated_extension(make, "acme.trusted"), isolated_extension(make, "stranger.untrusted"))
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text(
        '[[rules]]\naction = "allow"\npublisher = "acme"\n\n'
        '[[rules]]\naction = "allow"\npublisher = "stranger"\n\n'
        '[[trust]]\ndistribution = "Acme.Trusted"\n',  # names compare normalised, as everywhere in the policy
        encoding="utf-8",
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret", encoding="utf-8")
    host = hosts(home)  # isolation="auto", the default

    assert host.info("acme.trusted")["tier"] is None, "decided when it is loaded"
    assert host("start", "acme.trusted") == "Ext"
    assert host("start", "stranger.untrusted") == "RemoteExtension"
    trusted_worker, trusted_here, _ = host("call", "acme.trusted", "where")
    untrusted_worker, untrusted_here, _ = host("call", "stranger.untrusted", "where")

    assert host.info("acme.trusted")["tier"] == "guard"
    assert host.info("stranger.untrusted")["tier"] == "isolated"
    assert trusted_worker == trusted_here
    assert untrusted_worker == untrusted_here
    assert trusted_here != untrusted_here, "the untrusted one runs in a worker of its own"
    imported = host("modules", "acme_trusted", "stranger_untrusted")
    assert "acme_trusted" in imported
    assert "stranger_untrusted" not in imported, "never imported by the host"
    # Both are held to their grants: the trusted one by the guard, the other by the kernel.
    assert host.refuses("call", "acme.trusted", "read", str(secret))["error"] == "GuardDenied"
    assert "PermissionError" in host.refuses("call", "stranger.untrusted", "read", str(secret))["message"]


# A host on a platform without the isolated tier (macOS, Windows), as the host sees it.
ELSEWHERE = r"""
import json, logging, sys, sysconfig
from symphony_core import Host

logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
sysconfig.get_config_vars()  # read by the platform's name once, then kept: read it as this platform's
sys.platform = "darwin"
with Host(sys.argv[1]) as host:
    started = type(host.start("acme.elsewhere")).__name__
    print(json.dumps([host.isolation, started, host.inspect("acme.elsewhere").tier]))
"""


def test_where_the_platform_has_no_isolated_tier_a_default_host_runs_extensions_under_the_guard_and_says_so(
    install, make, venv, home
) -> None:
    install(isolated_extension(make, "acme.elsewhere"))
    allow(home, "acme.elsewhere")

    ran = venv.run(venv.python, "-c", ELSEWHERE, home)

    assert json.loads(ran.stdout) == ["auto", "Ext", "guard"]
    assert (
        "symphony.host: acme.elsewhere is not trusted, but this platform (darwin) has no isolated tier: it "
        "runs in this process under the in-process guard, which is not a sandbox"
    ) in ran.stderr


PUBLISHER = """
import threading

from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        self.context = context
        context.publish("activated", {"id": context.id})

    def tell(self, n):
        return self.context.publish("told", {"n": n})

    def tell_from_a_thread(self, count):
        def send():
            for i in range(count):
                self.context.publish("later", i)

        threading.Thread(target=send).start()

    def tell_what_cannot_travel(self):
        return self.context.publish("bad", object())
"""


def until(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_the_events_a_call_published_are_delivered_before_it_returns_or_raises(
    place: Path, extension_code: Path
) -> None:
    seen: list[Any] = []

    def subscriber(name: str, data: Any) -> None:  # a slow one: the answer comes before it is done
        time.sleep(0.002)
        seen.append(data)

    worker = WorkerProcess.start(spec_for(place, extension_code), timeout=60, on_publish=subscriber)
    try:
        for count, fail in ((1, False), (200, False), (60, True), (2, False)):
            seen.clear()
            if fail:
                with pytest.raises(RemoteError, match="published, then failed"):
                    worker.call("publish_many", (count, True))
            else:
                worker.call("publish_many", (count,))
            assert seen == list(range(count)), f"{len(seen)} of {count} delivered when the call returned"
    finally:
        worker.kill()


@pytest.mark.parametrize("isolation", ["guard", pytest.param("isolated", marks=needs("landlock"))])
def test_what_an_extension_publishes_reaches_the_hosts_subscribers_in_either_tier(
    install, make, home, hosts, isolation
) -> None:
    install(make.extension("acme.publisher", code=PUBLISHER))
    host = hosts(home, isolation=isolation)
    host("subscribe", "ACME.Publisher")  # ids in any spelling, as everywhere in the host API

    host("start", "acme.publisher")
    told = host("call", "acme.publisher", "tell", 1)
    host("call", "acme.publisher", "tell_from_a_thread", 50)  # after the call returned, from another thread
    later = until(lambda: [data for _, name, data in host("published") if name == "later"] == list(range(50)))
    refused = host.refuses("call", "acme.publisher", "tell_what_cannot_travel")
    host("call", "acme.publisher", "tell", 2)  # a refused event breaks nothing

    assert told is True
    assert later, host("published")
    # delivered before the call that published them returned, in either tier: nothing to wait for
    events = [(name, data) for _, name, data in host("published") if name != "later"]
    assert events == [("activated", {"id": "acme.publisher"}), ("told", {"n": 1}), ("told", {"n": 2})]
    assert refused["error"] in ("ExtensionFailed", "RemoteError")
    assert "object" in refused["message"]


CONFIGURED = """
from pydantic import Field, SecretStr

from symphony_core import Config, Extension


class Settings(Config):
    threshold: int = Field(default=3, ge=0, le=10)
    token: SecretStr = SecretStr("default-token")


class Ext(Extension):
    def activate(self, context):
        self.context = context

    def settings(self):
        return [self.context.config.threshold, self.context.config.token.get_secret_value()]
"""


@needs("landlock")
def test_an_isolated_hosts_config_commands_import_the_config_model_only_in_a_restricted_worker(
    install, make, home, hosts
) -> None:
    ext_id = "acme.configured"
    install(
        make.extension(
            ext_id, code=CONFIGURED, manifest_text=make.manifest(ext_id, config="acme_configured:Settings")
        )
    )
    host = hosts(home, isolation="isolated")

    schema = host("config_schema", ext_id)
    shown = host("config", ext_id)
    refused = host.refuses("set_config", ext_id, "threshold", "11")
    host("set_config", ext_id, "threshold", "7")
    host("set_config", ext_id, "token", "s3cret-value")
    after = host("config", ext_id)

    assert schema["properties"]["threshold"]["maximum"] == 10
    assert schema["properties"]["token"]["writeOnly"] is True
    assert shown == {
        "config": {"threshold": 3, "token": "**********"},
        "sources": {"threshold": "default", "token": "default"},
    }
    assert refused["error"] == "ConfigError"
    assert "threshold" in refused["message"]
    assert "override" in refused["message"]
    assert after["config"] == {"threshold": 7, "token": "**********"}
    assert after["sources"]["threshold"] == "override threshold"
    assert host("modules", "acme_configured") == [], "the host never imported the config model"
    # The extension itself gets the stored values, resolved in its own worker.
    host("start", ext_id)
    assert host("call", ext_id, "settings") == [7, "s3cret-value"]
    # While it runs, its own workers answer (with the overrides given, not those it started with).
    host("set_config", ext_id, "threshold", "8")
    assert host("config", ext_id)["config"]["threshold"] == 8
    assert host.refuses("set_config", ext_id, "threshold", "-1")["error"] == "ConfigError"
    assert host("modules", "acme_configured") == []


def test_a_trust_entry_that_selects_nothing_is_refused_with_its_place_in_the_policy_file(tmp_path) -> None:
    from symphony_core import ConfigError
    from symphony_core._security._grants import read_policy

    policy = tmp_path / "policy.toml"
    policy.write_text('[[trust]]\npublisher = "acme"\n\n[[trust]]\n', encoding="utf-8")

    with pytest.raises(ConfigError) as refused:
        read_policy(policy)

    assert str(policy) in refused.value.message
    assert "trust.1: Value error, an entry needs at least one of publisher, extension, distribution" in (
        refused.value.message
    )
    policy.write_text('[[trust]]\ndistribution = "Acme_Tools"\n', encoding="utf-8")
    assert read_policy(policy).trusts("other.ext", "acme.tools") == 1
    assert read_policy(policy).trusts("other.ext", "acme-toolbox") is None


@needs("landlock")
def test_an_isolated_extension_that_keeps_crashing_stays_quarantined_until_enabled_again(
    venv, install, make, home, hosts, tmp_path
) -> None:
    install(isolated_extension(make, "acme.crashing"))
    allow(home, "acme.crashing")
    host = hosts(home, isolation="isolated")
    host("start", "acme.crashing")

    crashes = [host.refuses("call", "acme.crashing", "die")["error"] for _ in range(3)]
    listed = {info["id"]: info for info in host("extensions")}["acme.crashing"]

    assert crashes == ["WorkerCrashed"] * 3
    assert listed["state"] == "failed"
    assert listed["problem"]["code"] == "quarantine"
    assert "3 failures" in listed["problem"]["message"]
    assert "exited with status 5" in listed["problem"]["message"]
    assert host.refuses("call", "acme.crashing", "where")["error"] == "ExtensionFailed"
    events = [event for event, _ in host("audit", "acme.crashing")]
    assert events.count("worker_crashed") == 2
    assert "worker_quarantined" in events
    assert "quarantined" in events
    host.close()

    # Every later host, and the command line, see the quarantine until a person lifts it.
    (later,) = [info for info in venv.symphony_json(home, "list") if info["id"] == "acme.crashing"]
    assert later["state"] == "failed"
    assert later["problem"]["code"] == "quarantine"
    assert "exited with status 5" in later["problem"]["message"]
    assert "symphony enable acme.crashing" in later["problem"]["hint"]
    assert hosts(home, isolation="isolated").refuses("start", "acme.crashing")["error"] == "ExtensionFailed"

    enabled = venv.symphony(home, "enable", "acme.crashing")
    assert enabled.returncode == 0, enabled.stderr
    assert "quarantine lifted" in enabled.stdout
    (lifted,) = [info for info in venv.symphony_json(home, "list") if info["id"] == "acme.crashing"]
    assert lifted["state"] == "validated"


LEAVES = """
import os, sys
from symphony_core._store._home import Home
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._security._sandbox._process import WorkerProcess

spec = WorkerSpec(extension="acme.probe", entry_point="acme_probe:Probe", home=Home.resolve(sys.argv[1]), path=(sys.argv[2],))
worker = WorkerProcess.start(spec)
print(os.getpid(), worker.pid, flush=True)
"""


def test_a_host_that_exits_without_stopping_its_worker_leaves_nothing_behind(place, extension_code) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LEAVES, str(place / "home"), str(extension_code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    host, worker = map(int, done.stdout.split())

    wait_for(lambda: not os.path.exists(f"/proc/{worker}"))
    folders = [Path("/dev/shm"), *(place.parent for place in places()[0].values())]
    assert [path for folder in folders for path in folder.glob(f"symphony-{host}-*")] == []


# The loop's side: an event loop sends each request and reads its answer itself (``acall``)


async def _ticking(work: Any) -> tuple[Any, float]:
    """Await ``work`` while a ticker runs on the same loop; return its result (or error) and the longest
    the ticker was kept waiting (seconds): how long the loop was blocked."""
    import asyncio

    longest, running = 0.0, True

    async def tick() -> None:
        nonlocal longest
        last = time.monotonic()
        while running:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            longest, last = max(longest, now - last), now

    ticker = asyncio.ensure_future(tick())
    try:
        result: Any = await work
    except Exception as exc:  # returned for the test to look at
        result = exc
    finally:
        running = False
        await ticker
    return result, longest


def test_calls_from_an_event_loop_run_at_once_in_as_many_workers_and_answer_as_blocking_ones(pools) -> None:
    import asyncio

    pool = pools(size=2)
    wait_for(lambda: pool.status().ready == 2)

    async def main() -> tuple[list[Any], Any, Any]:
        pids = await asyncio.gather(*(pool.acall("sleepy_pid", 0.3) for _ in range(2)))
        echoed = await pool.acall("echo", 1, b"x" * (1 << 20), key="value")
        with pytest.raises(ConfigError) as refused:
            await pool.acall("refuse")
        return pids, echoed, refused.value

    pids, echoed, error = asyncio.run(main())

    assert sorted(pids) == sorted(pool.status().pids)
    assert echoed == pool.call("echo", 1, b"x" * (1 << 20), key="value")
    assert (error.message, error.extension) == ("the threshold is too low", EXTENSION_ID)
    assert pool.status().failures == 0


def test_a_worker_that_overruns_a_call_from_a_loop_is_killed_and_the_loop_never_waits(pools) -> None:
    import asyncio

    pool = pools(backoff=0.05)
    first = pool.status().pids

    error, blocked = asyncio.run(_ticking(pool.acall("sleep", 30, timeout=0.5)))

    assert isinstance(error, WorkerTimeout), error
    assert blocked < 0.25
    assert pool.call("echo", "again") == [["again"], {}]
    assert pool.status().pids != first


def test_a_worker_that_hangs_up_and_lives_on_fails_its_call_without_blocking_the_loop(pools) -> None:
    import asyncio

    pool = pools(backoff=0.05)

    error, blocked = asyncio.run(_ticking(pool.acall("hang_up", 30)))

    assert isinstance(error, WorkerCrashed), error
    assert blocked < 0.25  # the host waited for its end on a thread
    assert pool.call("echo", "again") == [["again"], {}]


@pytest.mark.parametrize("from_loop", [False, True], ids=["blocking", "loop"])
def test_a_request_a_worker_stops_reading_is_bounded_by_the_call_time_out(pools, from_loop) -> None:
    import asyncio

    pool = pools(backoff=0.05)
    assert pool.call("deafen") is True
    big = b"x" * (4 << 20)  # far more than a pipe holds: the write itself would wait forever

    started = time.monotonic()
    if from_loop:
        error, blocked = asyncio.run(_ticking(pool.acall("echo", big, timeout=1.0)))
        assert blocked < 0.25
    else:
        with pytest.raises(WorkerTimeout) as raised:
            pool.call("echo", big, timeout=1.0)
        error = raised.value

    assert isinstance(error, WorkerTimeout), error
    assert time.monotonic() - started < 10
    assert pool.call("echo", "again") == [["again"], {}]


def test_a_call_from_a_loop_that_is_cancelled_stops_its_worker_without_counting_a_failure(pools) -> None:
    import asyncio

    events: list[PoolEvent] = []
    pool = pools(backoff=0.05, on_event=events.append)
    (first,) = pool.status().pids

    async def main() -> None:
        call = asyncio.ensure_future(pool.acall("sleep", 30))
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())

    wait_for(lambda: not os.path.exists(f"/proc/{first}") or _zombie(first), 10)
    wait_for(lambda: pool.status().ready == 1)
    assert pool.call("echo", "again") == [["again"], {}]
    status = pool.status()
    assert (status.failures, status.state) == (0, PoolState.READY)
    assert [event.action for event in events] == ["restarted"]  # replaced, never counted as crashed
    assert status.pids != (first,)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True
