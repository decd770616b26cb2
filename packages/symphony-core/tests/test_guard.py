"""The in-process guard denies what an extension was not granted, as far as Python can see, and learns.

Everything here is real: files, symlinks, listening sockets, child processes. The guard's audit hook stays
in the test process for good (audit hooks cannot be removed); outside ``acting_as`` it changes nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from symphony_core._model._errors import PermissionDenied
from symphony_core._model._hooks import PermissionEvent
from symphony_core._model._permissions import (
    FileRead,
    FileWrite,
    NetConnect,
    NetListen,
    Permission,
    Subprocess,
)
from symphony_core._security._guard import Policy, acting_as, check_access, learn
from symphony_core._store._home import Home

EXTENSION = "acme.guarded"


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """A tmp folder with the extension's ``data`` and ``cache`` folders and a ``secret.txt`` beside them."""
    for name in ("data", "cache"):
        (tmp_path / name).mkdir()
    (tmp_path / "data" / "input.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("do not read", encoding="utf-8")
    return tmp_path


def policy_for(folders: Path, *permissions: Permission, **options: Any) -> Policy:
    """A policy of the test extension, with ``{data}`` and ``{cache}`` under ``folders``."""
    return Policy(
        extension=EXTENSION,
        permissions=permissions,
        data=folders / "data",
        cache=folders / "cache",
        **options,
    )


def read(path: Path) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


@pytest.fixture
def listeners() -> Iterator[list[int]]:
    """Two real TCP servers listening on 127.0.0.1; the test gets their ports."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    yield [server.getsockname()[1] for server in sockets]
    for server in sockets:
        server.close()


# Files


def test_reading_a_file_outside_the_grant_is_denied(folders: Path) -> None:
    policy = policy_for(folders, FileRead(paths=("{data}",), reason="reads its inputs"))

    with acting_as(policy), pytest.raises(PermissionDenied) as denied:
        read(folders / "secret.txt")

    assert denied.value.extension == EXTENSION
    assert f"fs.read of {folders / 'secret.txt'} was not granted" in str(denied.value)


def test_writing_a_file_outside_the_grant_is_denied_even_where_reading_is_granted(folders: Path) -> None:
    policy = policy_for(folders, FileRead(paths=("{data}",), reason="reads its inputs"))

    with acting_as(policy):
        with pytest.raises(PermissionDenied, match=r"fs\.write"):
            (folders / "data" / "output.csv").write_text("x", encoding="utf-8")
        with pytest.raises(PermissionDenied, match=r"fs\.write"):
            open(folders / "data" / "input.csv", "a").close()

    assert not (folders / "data" / "output.csv").exists()


def test_files_inside_the_grant_can_be_read_and_written_through_the_variables(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    data, cache = home.data_dir(EXTENSION), home.extension_cache_dir(EXTENSION)
    for folder in (data / "nested", cache):
        folder.mkdir(parents=True)
    (data / "nested" / "input.csv").write_text("a\n1\n", encoding="utf-8")
    permissions = (
        FileRead(paths=("{data}",), reason="reads its inputs"),
        FileWrite(paths=("{cache}",), reason="keeps results"),
    )

    with acting_as(Policy.for_extension(EXTENSION, permissions, home)):
        text = read(data / "nested" / "input.csv")
        (cache / "result.txt").write_text(text, encoding="utf-8")
        os.mkdir(cache / "more")
        os.replace(cache / "result.txt", cache / "more" / "result.txt")
        with pytest.raises(PermissionDenied, match=r"fs\.read"):
            read(cache / "more" / "result.txt")  # a write grant does not grant reading

    assert (cache / "more" / "result.txt").read_text(encoding="utf-8") == "a\n1\n"


def test_a_glob_grants_only_the_files_it_matches(folders: Path) -> None:
    (folders / "data" / "deep" / "er").mkdir(parents=True)
    (folders / "data" / "deep" / "er" / "more.csv").write_text("c\n3\n", encoding="utf-8")
    (folders / "data" / "notes.txt").write_text("no", encoding="utf-8")
    policy = policy_for(folders, FileRead(paths=("{data}/**/*.csv",), reason="reads tables"))

    with acting_as(policy):
        assert read(folders / "data" / "input.csv").startswith("a,b")
        assert read(folders / "data" / "deep" / "er" / "more.csv").startswith("c")
        with pytest.raises(PermissionDenied):
            read(folders / "data" / "notes.txt")


def test_a_symlink_inside_the_grant_that_points_outside_is_denied(folders: Path) -> None:
    (folders / "data" / "innocent.csv").symlink_to(folders / "secret.txt")
    (folders / "data" / "outside").symlink_to(folders, target_is_directory=True)
    policy = policy_for(folders, FileRead(paths=("{data}",), reason="reads its inputs"))

    with acting_as(policy):
        with pytest.raises(PermissionDenied, match=r"secret\.txt"):
            read(folders / "data" / "innocent.csv")
        with pytest.raises(PermissionDenied, match=r"secret\.txt"):
            read(folders / "data" / "outside" / "secret.txt")


def test_a_granted_folder_the_extension_swapped_for_a_symlink_does_not_widen_the_grant(folders: Path) -> None:
    # It may write its cache: it replaces the granted folder with a link to the folder above everything.
    (folders / "cache" / "models").symlink_to("/", target_is_directory=True)
    permissions = (
        FileRead(paths=("{cache}/models",), reason="reads its models"),
        FileWrite(paths=("{cache}",), reason="keeps its models"),
    )
    policy = policy_for(folders, *permissions)  # built after the swap, as the next host run builds it

    with acting_as(policy), pytest.raises(PermissionDenied, match=r"secret\.txt"):
        read(folders / "cache" / "models" / str(folders).lstrip("/") / "secret.txt")
    assert not policy.allows_read(folders / "secret.txt")
    assert not policy.allows_read("/etc/hostname")


def test_an_own_folder_that_is_itself_a_symlink_grants_nothing_beyond_it(folders: Path) -> None:
    (folders / "cache").rmdir()
    (folders / "cache").symlink_to(folders, target_is_directory=True)
    policy = policy_for(folders, FileRead(paths=("{cache}",), reason="reads what it cached"))

    with acting_as(policy), pytest.raises(PermissionDenied, match=r"secret\.txt"):
        read(folders / "cache" / "secret.txt")
    assert not policy.allows_read(folders / "data" / "input.csv")


def test_an_import_folder_the_extension_planted_as_a_symlink_is_not_followed(
    folders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its writable cache holds a link to the folder above, and that link is on the import path.
    (folders / "cache" / "site").symlink_to(folders, target_is_directory=True)
    monkeypatch.syspath_prepend(str(folders / "cache" / "site"))
    policy = policy_for(folders)

    with acting_as(policy), pytest.raises(PermissionDenied, match=r"secret\.txt"):
        read(folders / "secret.txt")


def test_a_planted_import_folder_is_not_followed_when_another_extension_resolved_it_first(
    folders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The interpreter's folders are resolved once for every extension: another extension's policy,
    # built first, follows the link, which is not in a folder it can write.
    (folders / "cache" / "site").symlink_to(folders, target_is_directory=True)
    monkeypatch.syspath_prepend(str(folders / "cache" / "site"))
    (folders / "other").mkdir()
    other = Policy(extension="acme.other", data=folders / "other" / "data", cache=folders / "other" / "cache")
    assert other.allows_read(folders / "secret.txt")
    policy = policy_for(folders)

    with acting_as(policy), pytest.raises(PermissionDenied, match=r"secret\.txt"):
        read(folders / "secret.txt")


def test_a_grant_that_covers_symphony_home_stops_at_the_extensions_own_folders(tmp_path: Path) -> None:
    home = Home(tmp_path / "symphony")
    own = home.data_dir(EXTENSION)
    own.mkdir(parents=True)
    (own / "input.csv").write_text("a\n1\n", encoding="utf-8")
    home.policy_file.write_text('[[trust]]\ndistribution = "acme-guarded"\n', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    everything = FileRead(paths=(str(tmp_path),), reason="reads your files")

    with acting_as(Policy.for_extension(EXTENSION, (everything,), home)):
        assert read(tmp_path / "notes.txt") == "mine"
        assert read(own / "input.csv") == "a\n1\n"
        with pytest.raises(PermissionDenied, match=r"policy\.toml"):
            read(home.policy_file)


def test_deleting_renaming_and_creating_folders_need_the_write_permission(folders: Path) -> None:
    policy = policy_for(folders, FileRead(paths=("{data}",), reason="reads its inputs"))

    with acting_as(policy):
        with pytest.raises(PermissionDenied, match=r"fs\.write"):
            os.remove(folders / "data" / "input.csv")
        with pytest.raises(PermissionDenied, match=r"fs\.write"):
            os.rename(folders / "data" / "input.csv", folders / "data" / "moved.csv")
        with pytest.raises(PermissionDenied, match=r"fs\.write"):
            os.mkdir(folders / "data" / "new")

    assert sorted(path.name for path in (folders / "data").iterdir()) == ["input.csv"]


def test_the_interpreter_still_imports_and_caches_bytecode_under_the_guard(
    folders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folders / "site").mkdir()
    (folders / "site" / "guarded_fresh_module.py").write_text("ANSWER = 42\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(folders / "site"))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    policy = policy_for(folders)  # built after sys.path changed: the new folder is the interpreter's

    try:
        with acting_as(policy):
            import tabnanny  # a standard library module this process has not imported yet

            import guarded_fresh_module  # type: ignore[import-not-found]
    finally:
        sys.modules.pop("guarded_fresh_module", None)

    assert guarded_fresh_module.ANSWER == 42
    assert tabnanny.__name__ == "tabnanny"
    assert list((folders / "site" / "__pycache__").glob("guarded_fresh_module.*.pyc"))


# Network


def test_connecting_to_a_port_that_was_not_granted_is_denied(folders: Path, listeners: list[int]) -> None:
    granted, other = listeners
    policy = policy_for(folders, NetConnect(hosts=(f"127.0.0.1:{granted}",), reason="talks to its server"))

    with acting_as(policy):
        with socket.create_connection(("127.0.0.1", granted), timeout=5):
            pass
        with pytest.raises(PermissionDenied, match=f"net.connect of 127.0.0.1:{other}"):
            socket.create_connection(("127.0.0.1", other), timeout=5)


def test_a_granted_host_name_covers_the_addresses_it_resolves_to(folders: Path, listeners: list[int]) -> None:
    port = listeners[0]
    policy = policy_for(folders, NetConnect(hosts=(f"localhost:{port}",), reason="talks to its server"))

    with acting_as(policy):
        with socket.create_connection(("localhost", port), timeout=5):
            pass
        with pytest.raises(PermissionDenied):
            socket.create_connection(("localhost", listeners[1]), timeout=5)


def test_listening_needs_the_listen_permission(folders: Path) -> None:
    with (
        acting_as(policy_for(folders)),
        socket.socket() as server,
        pytest.raises(PermissionDenied, match=r"net\.listen of 127\.0\.0\.1:0"),
    ):
        server.bind(("127.0.0.1", 0))

    granted = policy_for(folders, NetListen(hosts=("127.0.0.1:*",), reason="serves a local page"))
    with acting_as(granted), socket.socket() as server, socket.socket() as everywhere:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with pytest.raises(PermissionDenied):
            everywhere.bind(("0.0.0.0", 0))


# Programs


def test_starting_a_program_needs_the_subprocess_permission(folders: Path) -> None:
    with acting_as(policy_for(folders)):
        with pytest.raises(PermissionDenied, match="subprocess"):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        with pytest.raises(PermissionDenied, match="subprocess of /bin/sh"):
            os.system("true")


def test_granted_programs_can_be_started_by_path_or_name(folders: Path) -> None:
    by_path = policy_for(folders, Subprocess(commands=(sys.executable,), reason="runs a helper"))
    by_name = policy_for(folders, Subprocess(commands=("sh",), reason="runs shell commands"))

    with acting_as(by_path):
        assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0
        with pytest.raises(PermissionDenied):
            os.system("true")
    with acting_as(by_name):
        assert os.system("true") == 0
        assert subprocess.run("exit 3", shell=True, check=False).returncode == 3


# Identity


def test_nothing_is_restricted_outside_acting_as_nor_after_leaving_it(folders: Path) -> None:
    policy = policy_for(folders)
    assert read(folders / "secret.txt") == "do not read"

    with acting_as(policy), pytest.raises(PermissionDenied):
        read(folders / "secret.txt")

    assert read(folders / "secret.txt") == "do not read"
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0


def test_the_innermost_identity_applies_and_none_runs_as_the_host(folders: Path) -> None:
    reader = policy_for(folders, FileRead(paths=(str(folders / "secret.txt"),), reason="reads the secret"))
    other = policy_for(folders)

    with acting_as(reader):
        assert read(folders / "secret.txt") == "do not read"
        with acting_as(other), pytest.raises(PermissionDenied):
            read(folders / "secret.txt")
        with acting_as(other), acting_as(None):
            assert read(folders / "secret.txt") == "do not read"
        assert read(folders / "secret.txt") == "do not read"


def test_an_asyncio_task_started_inside_keeps_the_identity(folders: Path) -> None:
    async def reader() -> str:
        await asyncio.sleep(0)
        return read(folders / "secret.txt")

    async def main() -> None:
        with acting_as(policy_for(folders)):
            task = asyncio.create_task(reader())
        with pytest.raises(PermissionDenied):
            await task  # it runs after the block ended, still as the extension

    asyncio.run(main())


def test_a_thread_started_inside_does_not_inherit_the_identity(folders: Path) -> None:
    seen: list[str] = []

    with acting_as(policy_for(folders)):
        thread = threading.Thread(target=lambda: seen.append(read(folders / "secret.txt")))
        thread.start()
        thread.join()

    assert seen == ["do not read"]


# Reporting


def test_each_denial_reaches_on_event_and_says_what_to_ask_for(folders: Path) -> None:
    events: list[PermissionEvent] = []
    policy = policy_for(folders, on_event=events.append)

    with acting_as(policy):
        with pytest.raises(PermissionDenied) as denied:
            read(folders / "data" / "input.csv")
        with pytest.raises(PermissionDenied):
            os.system("true")

    message = str(denied.value)
    assert message.startswith(f"{EXTENSION}: fs.read of {folders / 'data' / 'input.csv'} was not granted")
    assert "not a sandbox" in message
    assert denied.value.hint == (
        "ask for it in symphony.toml: [[permissions]] type = 'fs.read' paths = [\"{data}/input.csv\"]"
    )
    assert events == [
        PermissionEvent(EXTENSION, "denied", "fs.read", str(folders / "data" / "input.csv"), actor="guard"),
        PermissionEvent(EXTENSION, "denied", "subprocess", "/bin/sh", actor="guard"),
    ]


def test_a_failing_observer_does_not_replace_the_denial(folders: Path) -> None:
    def broken(event: PermissionEvent) -> None:
        raise RuntimeError("the audit log is broken")

    with acting_as(policy_for(folders, on_event=broken)), pytest.raises(PermissionDenied) as denied:
        read(folders / "secret.txt")

    assert isinstance(denied.value.__context__, RuntimeError)


def test_a_denial_is_a_permission_error_like_the_kernels(folders: Path) -> None:
    with acting_as(policy_for(folders)), pytest.raises(PermissionError) as denied:
        read(folders / "secret.txt")

    assert denied.value.errno == errno.EACCES
    assert isinstance(denied.value, PermissionDenied)


def test_a_policy_answers_questions_without_touching_anything(folders: Path) -> None:
    policy = policy_for(
        folders,
        FileRead(paths=("{data}", "{home}/.config/acme/*.toml"), reason="reads inputs and settings"),
        FileWrite(paths=("{cache}/**",), reason="keeps results"),
        NetConnect(hosts=("*.example.com:443", "127.0.0.1:*"), reason="fetches models"),
        NetListen(hosts=("[::1]:8080",), reason="serves a page"),
        Subprocess(commands=("git", "python3*"), reason="runs tools"),
    )

    assert policy.allows_read(folders / "data" / "a" / "b.csv")
    assert policy.allows_read(Path.home() / ".config" / "acme" / "settings.toml")
    assert not policy.allows_read(Path.home() / ".config" / "acme" / "deeper" / "settings.toml")
    assert policy.allows_read(os.__file__)  # the interpreter's own files
    assert not policy.allows_read(folders / "secret.txt")
    assert policy.allows_write(folders / "cache" / "x" / "y")
    assert not policy.allows_write(folders / "data" / "input.csv")
    assert policy.allows_connect("api.example.com", 443)
    assert policy.allows_connect("API.Example.com", 443)
    assert not policy.allows_connect("api.example.com", 80)
    assert not policy.allows_connect("example.org", 443)
    assert policy.allows_connect("127.0.0.1", 5432)
    assert policy.allows_listen("::1", 8080)
    assert not policy.allows_listen("127.0.0.1", 8080)
    assert policy.allows_subprocess("git")
    assert policy.allows_subprocess("/usr/bin/git")
    assert policy.allows_subprocess("python3.11")
    assert not policy.allows_subprocess("sh")


# Learning mode


def test_learning_mode_proposes_the_permissions_a_real_run_needs(
    tmp_path: Path, listeners: list[int]
) -> None:
    tomllib = pytest.importorskip("tomllib")
    home = Home(tmp_path / "home")
    data, cache = home.data_dir(EXTENSION), home.extension_cache_dir(EXTENSION)
    data.mkdir(parents=True)
    (data / "input.csv").write_text("a\n1\n", encoding="utf-8")
    port = listeners[0]

    def run() -> None:
        text = read(data / "input.csv")
        os.makedirs(cache, exist_ok=True)
        (cache / "copy.csv").write_text(text, encoding="utf-8")
        with socket.create_connection(("localhost", port), timeout=5):
            pass
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    with learn(Policy.for_extension(EXTENSION, (), home)) as recorder:
        run()

    proposal = recorder.proposal()
    assert proposal == [
        {"type": "fs.read", "paths": ["{data}"], "reason": "TODO: say why"},
        {"type": "fs.write", "paths": ["{cache}"], "reason": "TODO: say why"},
        {"type": "net.connect", "hosts": [f"localhost:{port}"], "reason": "TODO: say why"},
        {"type": "subprocess", "commands": [os.path.basename(sys.executable)], "reason": "TODO: say why"},
    ]
    assert tomllib.loads(recorder.toml())["permissions"] == proposal
    with pytest.raises(ValidationError, match="the reason 'TODO: say why' is a placeholder"):
        TypeAdapter(list[Permission]).validate_python(proposal)  # the author must say why
    written = [{**item, "reason": f"Needs it for the test ({item['type']})."} for item in proposal]
    permissions = tuple(TypeAdapter(list[Permission]).validate_python(written))
    with acting_as(Policy.for_extension(EXTENSION, permissions, home)):
        run()  # granted as proposed, the same run passes the guard


def test_learning_mode_records_what_it_would_have_denied_and_allows_it(folders: Path) -> None:
    with learn(policy_for(folders)) as recorder:
        assert read(folders / "secret.txt") == "do not read"
        assert os.system("true") == 0

    assert recorder.accesses == {("fs.read", str(folders / "secret.txt")), ("subprocess", "/bin/sh")}


# What the guard cannot see: if one of these starts failing, the guard's documentation must change.


def test_native_code_bypasses_the_guard_ctypes(folders: Path) -> None:
    libc = ctypes.CDLL(None)
    buffer = ctypes.create_string_buffer(64)

    with acting_as(policy_for(folders)):
        with pytest.raises(PermissionDenied):
            read(folders / "secret.txt")
        fd = libc.open(str(folders / "secret.txt").encode(), os.O_RDONLY)
        size = libc.read(fd, buffer, 64)
        libc.close(fd)

    assert fd >= 0
    assert buffer.raw[:size] == b"do not read", "ctypes no longer bypasses the guard: update _guard.py's docs"


def test_check_access_holds_grants_for_paths_handed_to_native_code(folders: Path) -> None:
    policy = policy_for(folders, FileRead(paths=("{data}/*.csv",), reason="read the inputs"))
    link = folders / "data" / "escape.csv"
    link.symlink_to(folders / "secret.txt")

    check_access("fs.read", folders / "secret.txt")  # no extension code running: the host may do anything
    with acting_as(policy):
        check_access("fs.read", folders / "data" / "input.csv")
        with pytest.raises(PermissionDenied, match=r"fs\.read"):
            check_access("fs.read", folders / "secret.txt")
        with pytest.raises(PermissionDenied, match=r"secret\.txt"):
            check_access("fs.read", link)
        with pytest.raises(PermissionDenied, match=r"fs\.write"):
            check_access("fs.write", folders / "data" / "input.csv")
    with learn(policy) as recorder:
        check_access("fs.write", folders / "data" / "out.parquet")
    assert ("fs.write", str(folders / "data" / "out.parquet")) in recorder.accesses
