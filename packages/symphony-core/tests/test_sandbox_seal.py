"""Ways out of an isolated worker that were found, each one tried for real and refused by the kernel.

An attacking extension runs the attempt inside a real worker (``attempt`` executes the code it is given,
as an extension's own code would), restricted by Landlock, namespaces and seccomp. Each test also shows
that what the grant does allow still works, so a refusal is the rule's doing, not a broken worker.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from symphony_core._model._permissions import FileRead, NetConnect, Permission, Subprocess
from symphony_core._security._sandbox._probe import probe
from symphony_core._security._sandbox._process import WorkerProcess
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._store._home import Home

CAPABILITIES = probe()
pytestmark = pytest.mark.skipif(
    not (CAPABILITIES.has("landlock") and CAPABILITIES.has("seccomp")) and not os.environ.get("CI"),
    reason=f"the kernel cannot restrict a worker here: {CAPABILITIES.summary()}",
)  # in CI they run anyway, and fail: security tests never skip there

ATTACKER = """
from symphony_core import Extension


class Attacker(Extension):
    def activate(self, context):
        self.context = context

    def attempt(self, source, **values):
        namespace = {"context": self.context, **values}
        exec(source, namespace)
        return namespace.get("result")
"""


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("code")
    (folder / "acme_attacker").mkdir()
    (folder / "acme_attacker" / "__init__.py").write_text(ATTACKER, encoding="utf-8")
    return folder


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A ``secret.txt`` no grant covers, beside the Symphony home."""
    (tmp_path / "secret.txt").write_text("do not read", encoding="utf-8")
    return tmp_path


@pytest.fixture
def start(place: Path, code: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def starter(*permissions: Permission) -> WorkerProcess:
        spec = WorkerSpec(
            extension="acme.attacker",
            entry_point="acme_attacker:Attacker",
            home=Home(place / "home"),
            permissions=permissions,
            path=(str(code),),
        )
        worker = WorkerProcess.start(spec, timeout=60)
        started.append(worker)
        return worker

    yield starter
    for worker in started:
        worker.kill()


def attempt(worker: WorkerProcess, source: str, **values: Any) -> Any:
    return worker.call("attempt", (textwrap.dedent(source),), values)


READ = """
try:
    with open(path, encoding="utf-8") as file:
        result = file.read()
except OSError as exc:
    result = exc.errno
"""


# Files


def test_a_granted_folder_swapped_for_a_symlink_gives_the_next_worker_no_rule_through_it(
    start, place
) -> None:
    models = "{cache}/models"
    first = start(FileRead(paths=(models,), reason="reads its models"))
    cache = Path(attempt(first, "result = str(context.cache_dir)"))
    attempt(first, "import os; os.makedirs(cache + '/models', exist_ok=True)", cache=str(cache))
    assert (
        attempt(
            first,
            "import os; os.rmdir(cache + '/models'); os.symlink(target, cache + '/models')",
            cache=str(cache),
            target=str(place),
        )
        is None
    )
    first.stop()

    second = start(FileRead(paths=(models,), reason="reads its models"))

    assert attempt(second, READ, path=str(cache / "models" / "secret.txt")) == errno.EACCES
    assert attempt(second, READ, path=str(place / "secret.txt")) == errno.EACCES
    assert str(cache / "models") in second.skipped


def test_a_subprocess_grant_lets_the_worker_run_programs_but_not_read_every_file(start, place) -> None:
    worker = start(Subprocess(reason="runs tools"))

    assert attempt(worker, READ, path=str(place / "secret.txt")) == errno.EACCES
    ran = attempt(
        worker,
        "import subprocess; result = subprocess.run(['echo', 'ran'], capture_output=True, text=True).stdout",
    )
    assert ran == "ran\n"


def test_a_folder_named_as_a_command_is_not_opened_to_the_worker(start, place) -> None:
    worker = start(Subprocess(commands=(str(place),), reason="runs tools"))

    assert attempt(worker, READ, path=str(place / "secret.txt")) == errno.EACCES
    assert any(str(place) in note for note in worker.notes)


def test_the_worker_imports_without_the_site_module_from_the_folders_the_host_named(start, place) -> None:
    worker = start()

    flags = attempt(
        worker, "import sys; result = [sys.flags.no_site, sys.flags.isolated, 'site' in sys.modules]"
    )

    assert flags == [1, 1, False]


# Sockets


def test_mptcp_cannot_go_around_the_tcp_port_rules(start) -> None:
    with socket.create_server(("127.0.0.1", 0)) as granted, socket.create_server(("127.0.0.1", 0)) as other:
        port, elsewhere = granted.getsockname()[1], other.getsockname()[1]
        worker = start(NetConnect(hosts=(f"127.0.0.1:{port}",), reason="talks to its service"))

        mptcp = attempt(
            worker,
            """
import socket
try:
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    client.settimeout(5)
    client.connect(("127.0.0.1", elsewhere))
    result = 0
except OSError as exc:
    result = exc.errno
""",
            elsewhere=elsewhere,
        )
        tcp = attempt(
            worker,
            "import socket; socket.create_connection(('127.0.0.1', port), timeout=5).close()",
            port=port,
        )

    assert mptcp == errno.EACCES
    assert tcp is None


def test_a_datagram_socket_pair_cannot_reach_unix_sockets_on_the_file_system(start, tmp_path) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "log.sock"
    listening.bind(str(path))
    listening.settimeout(0.5)
    worker = start()

    with listening:
        sent = attempt(
            worker,
            """
import socket
try:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    left.sendto(b"escaped", target)
    result = 0
except OSError as exc:
    result = exc.errno
""",
            target=str(path),
        )
        with pytest.raises(TimeoutError):
            listening.recv(64)
    stream = attempt(
        worker, "import socket; a, b = socket.socketpair(); a.sendall(b'x'); result = b.recv(1).decode()"
    )

    assert sent == errno.EACCES
    assert stream == "x"


def test_netlink_is_limited_to_routes(start) -> None:
    worker = start()

    opened = attempt(
        worker,
        """
import socket
result = {}
for protocol in (0, 4, 9, 15):  # route, socket diagnostics, audit, device events
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol).close()
        result[protocol] = 0
    except OSError as exc:
        result[protocol] = exc.errno
""",
    )

    assert opened == {0: 0, 4: errno.EACCES, 9: errno.EACCES, 15: errno.EACCES}


# Processes


@pytest.mark.skipif(
    not CAPABILITIES.has("user_namespace") and os.getuid() != 0, reason="no PID namespace here"
)
def test_the_host_cannot_be_limited_reniced_pinned_or_signalled_from_a_worker(start) -> None:
    worker = start()
    before = (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getaffinity(0), _limits())

    results = attempt(
        worker,
        """
import os, resource
def errno_of(call):
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0
result = {
    "prlimit": errno_of(lambda: resource.prlimit(host, resource.RLIMIT_CPU, (1, 1))),
    "nofile": errno_of(lambda: resource.prlimit(host, resource.RLIMIT_NOFILE, (16, 16))),
    "renice": errno_of(lambda: os.setpriority(os.PRIO_PROCESS, host, 19)),
    "renice_user": errno_of(lambda: os.setpriority(os.PRIO_USER, os.getuid(), 19)),
    "pin": errno_of(lambda: os.sched_setaffinity(host, {0})),
    "scheduler": errno_of(lambda: os.sched_setscheduler(host, os.SCHED_IDLE, os.sched_param(0))),
    "kill": errno_of(lambda: os.kill(host, 0)),
    "kill_all": errno_of(lambda: os.kill(-1, 0)),
}
""",
        host=os.getpid(),
    )

    for call in ("prlimit", "nofile", "renice", "pin", "scheduler", "kill"):
        assert results[call] == errno.ESRCH, f"{call} reached the host: {results}"
    assert results["kill_all"] == errno.ESRCH, "no process but the worker's own is in its namespace"
    assert (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getaffinity(0), _limits()) == before


def _limits() -> tuple[Any, ...]:
    import resource

    return tuple(resource.getrlimit(limit) for limit in (resource.RLIMIT_CPU, resource.RLIMIT_NOFILE))


DAEMON_HOST = """
import os, sys, textwrap
from symphony_core._store._home import Home
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._security._sandbox._process import WorkerProcess

spec = WorkerSpec(
    extension="acme.attacker", entry_point="acme_attacker:Attacker", home=Home.resolve(sys.argv[1]), path=(sys.argv[2],)
)
worker = WorkerProcess.start(spec)
daemon = textwrap.dedent('''
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open(context.cache_dir / "daemon.pid", "w") as file:
                file.write(os.readlink("/proc/self"))  # its number as the host sees it
            while True:
                time.sleep(0.05)
        os._exit(0)
    told = context.cache_dir / "daemon.pid"
    for _ in range(1000):  # until the daemon has written its number
        if told.exists() and told.read_text():
            break
        time.sleep(0.01)
    result = told.read_text()
''')
print(worker.call("attempt", (daemon,)), flush=True)
import time
time.sleep(600)
"""


def test_a_daemon_an_extension_starts_dies_with_a_host_that_was_killed_outright(place, code) -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", DAEMON_HOST, str(place / "home"), str(code)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert host.stdout is not None
        daemon = int(host.stdout.readline())
        assert _alive(daemon), "the daemon was started"
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait()
        host.stdout.close()

    deadline = time.monotonic() + 10
    while _alive(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(daemon), f"process {daemon} outlived its host"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False


def test_the_host_checks_from_proc_that_the_worker_runs_in_a_pid_namespace_of_its_own(start) -> None:
    worker = start()

    assert "processes" in worker.enforced["verified"], worker.enforced
    inside = attempt(worker, "import os; result = os.getpid()")
    assert inside == 2, "process 2 of its own namespace, under the reaper that is process 1"
    assert worker.pid not in (None, inside), "the host sees it under its own number"
