"""Attacks an extension author might think of once the obvious ones fail.

Each probe returns what happened, step by step (``hostile_kit.attempt``). Processes and threads it starts
end by themselves after ``seconds``; signals are never sent.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from typing import Any

from hostile_kit import Hostile, attempt, pipes, read_text

_X86_64 = {"pidfd_getfd": 438, "io_uring_setup": 425, "process_vm_readv": 310}
PTRACE_SEIZE, PTRACE_DETACH = 0x4206, 17


def _number(name: str) -> int:
    try:
        from symphony_core._security._sandbox._syscalls import NUMBERS

        return NUMBERS[name]
    except (ImportError, KeyError):
        return _X86_64[name]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _checked(result: int) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result


class Ext(Hostile):
    # Another process's memory, files and environment

    def proc_files(self, pid: int) -> dict[str, Any]:
        return {
            name: attempt(read_text, f"/proc/{pid}/{name}")
            for name in ("environ", "cmdline", "maps", "status")
        } | {"mem": attempt(lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY)))}

    def trace(self, pid: int) -> dict[str, Any]:
        libc = _libc()

        def seize() -> int:
            _checked(libc.ptrace(PTRACE_SEIZE, pid, None, None))
            return libc.ptrace(PTRACE_DETACH, pid, None, None)

        def read_memory() -> int:
            buffer = ctypes.create_string_buffer(64)
            local = (ctypes.c_void_p * 2)(ctypes.cast(buffer, ctypes.c_void_p), 64)
            remote = (ctypes.c_void_p * 2)(0x10000, 64)
            return _checked(libc.syscall(_number("process_vm_readv"), pid, local, 1, remote, 1, 0))

        def steal(number: int) -> str:
            pidfd = os.pidfd_open(pid)
            try:
                stolen = _checked(libc.syscall(_number("pidfd_getfd"), pidfd, number, 0))
            finally:
                os.close(pidfd)
            try:
                return os.readlink(f"/proc/self/fd/{stolen}")
            finally:
                os.close(stolen)

        return {
            "ptrace": attempt(seize),
            "process_vm_readv": attempt(read_memory),
            "pidfd_getfd": attempt(steal, 3),
        }

    def io_uring(self) -> dict[str, Any]:
        params = ctypes.create_string_buffer(120)
        return attempt(lambda: _checked(_libc().syscall(_number("io_uring_setup"), 4, params)))

    # Files: a hard link to a secret, a link to a neighbour's folder, a program run from memory

    def hard_link(self, secret: str) -> dict[str, Any]:
        stolen = self.context.cache_dir / "stolen"
        return {
            "link": attempt(os.link, secret, stolen),
            "read": attempt(read_text, str(stolen)),
        }

    def link_neighbour(self, target: str) -> dict[str, Any]:
        return attempt(os.symlink, target, self.context.data_dir / "neighbour")

    def memfd_exec(self) -> dict[str, Any]:
        """Copy this interpreter into a memfd and run it from there, without a subprocess grant."""

        def run() -> str:
            with open(sys.executable, "rb") as file:
                program = file.read()
            fd = os.memfd_create("program", 0)
            os.write(fd, program)
            read_end, write_end = os.pipe()
            child = os.fork()
            if child == 0:
                try:
                    os.dup2(write_end, 1)
                    os.execve(
                        f"/proc/self/fd/{fd}",
                        ["python", "-S", "-c", "print('ran from a memfd')"],
                        {"PYTHONHOME": sys.base_prefix},
                    )
                finally:
                    os._exit(99)
            os.close(write_end)
            output = os.read(read_end, 200).decode(errors="replace")
            _, status = os.waitpid(child, 0)
            os.close(read_end)
            os.close(fd)
            return f"exit {os.waitstatus_to_exitcode(status)}: {output.strip()}"

        return attempt(run)

    # Processes, threads, events

    def fork_bomb(self, limit: int, seconds: float) -> dict[str, Any]:
        started, error = 0, None
        for _ in range(limit):
            try:
                child = os.fork()
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            if child == 0:
                time.sleep(seconds)
                os._exit(0)
            started += 1
        return {"started": started, "error": error}

    def thread_storm(self, limit: int, seconds: float) -> dict[str, Any]:
        threading.stack_size(256 << 10)
        started, error = 0, None
        for _ in range(limit):
            try:
                threading.Thread(target=time.sleep, args=(seconds,), daemon=True).start()
            except RuntimeError as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            started += 1
        return {"started": started, "error": error}

    def flood(self, seconds: float) -> int:
        sent, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.context.publish("flood", {"n": sent, "padding": "x" * 1000})
            sent += 1
        return sent

    # Protocol: never answer, or close the pipes and stay

    def hang(self) -> None:
        time.sleep(3600)

    def close_pipes(self) -> None:
        for fd in set(pipes().values()):
            os.close(fd)
        time.sleep(3600)
