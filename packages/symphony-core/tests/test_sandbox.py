"""The isolated tier on this machine: what the kernel offers, and workers that it really restricts.

Nothing is mocked: the probe asks the kernel, workers are real processes that restrict themselves with
Landlock, namespaces, seccomp and cgroups, and every escape test is a real attempt from inside a worker.
A test is skipped only when the probe says this kernel cannot enforce what it is about.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from symphony_core._sandbox import _landlock
from symphony_core._sandbox._cgroups import Cgroups
from symphony_core._sandbox._probe import probe

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
