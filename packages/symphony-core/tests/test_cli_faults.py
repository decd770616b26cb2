"""The ``symphony`` command when things go wrong, when a script reads it, and when a person changes their
mind: a read-only or damaged home, pipes, Ctrl-C, doctor's verdict, config undo and the audit log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

CONFIGURED = "acme.cli-configured"
LONG = "acme.an-extension-id-long-enough-to-be-folded-by-a-narrow-table"
SLOW = "acme.cli-slow"
PEEKS = "acme.cli-peeks"

CONFIGURED_CODE = """
from pydantic import Field

from symphony_core import Config, Extension


class Settings(Config):
    threshold: int = Field(default=3, ge=0, le=10)
    label: str = "plain"


class Ext(Extension):
    def activate(self, context):
        self.context = context
"""

# Its package reads a file it was not granted when it is imported, as importing its config model does.
PEEKS_CODE = """
from pathlib import Path

from symphony_core import Config, Extension

USERS = Path("/etc/passwd").read_text()


class Settings(Config):
    level: int = 1


class Ext(Extension):
    pass
"""

# Writes a file the test waits for, then naps: Ctrl-C arrives while its code runs.
SLOW_CODE = """
import os
import time

from symphony_core import Extension


class Ext(Extension):
    def nap(self):
        with open(os.environ["ACME_NAPPING"], "w") as marker:
            marker.write("napping")
        time.sleep(120)
"""


@pytest.fixture(scope="module", autouse=True)
def installed(venv, make, tmp_path_factory):
    projects = [
        make.extension(
            CONFIGURED,
            code=CONFIGURED_CODE,
            manifest_text=make.manifest(CONFIGURED, config="acme_cli_configured:Settings"),
        ),
        make.greeter(LONG),
        make.extension(SLOW, code=SLOW_CODE),
        make.extension(
            PEEKS, code=PEEKS_CODE, manifest_text=make.manifest(PEEKS, config="acme_cli_peeks:Settings")
        ),
    ]
    venv.install(tmp_path_factory.mktemp("cli-faults"), *projects)
    yield
    venv.uninstall(*[project.name for project in projects])


# Read-only and damaged homes


@pytest.fixture
def read_only(venv, home) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``symphony`` on ``home`` made read-only: a read-only bind mount for root (whom file modes do not
    stop), the files' modes for anyone else."""
    root = os.geteuid() == 0
    if root and shutil.which("unshare") is None:
        pytest.skip("making a folder read-only for root needs util-linux's unshare")
    locked: list[bool] = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        if not root and not locked:  # from the first read-only command on
            for folder, _, files in os.walk(home):
                for name in files:
                    os.chmod(Path(folder) / name, 0o444)
                os.chmod(folder, 0o555)
            locked.append(True)
        command = [str(venv.root / "bin" / "symphony"), "--home", str(home), *args]
        if root:
            mount = 'mount --bind -o ro "$0" "$0" && exec "$@"'
            command = ["unshare", "--mount", "sh", "-c", mount, str(home), *command]
        return subprocess.run(command, capture_output=True, text=True, env=venv.env, timeout=120, check=False)

    yield run
    if locked:
        for folder, _, _ in os.walk(home):
            os.chmod(folder, 0o755)


def test_read_only_commands_work_on_a_read_only_home_and_changes_say_it_is_read_only(
    venv, home, make, read_only
):
    assert venv.symphony(home, "disable", LONG).returncode == 0
    assert venv.symphony(home, "config", "set", CONFIGURED, "threshold", "7").returncode == 0

    listed = read_only("list", "--json")
    inspected = read_only("inspect", CONFIGURED)
    shown = read_only("config", "show", CONFIGURED, "--json")
    audit = read_only("audit", LONG, "--json")
    doctor = read_only("doctor", "--json")
    enable = read_only("enable", LONG)

    assert listed.returncode == 0, listed.stderr
    assert make.by_id(json.loads(listed.stdout))[LONG]["enabled"] is False, "the state as it was written"
    assert inspected.returncode == 0, inspected.stderr
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["config"]["threshold"] == 7
    assert audit.returncode == 0, audit.stderr
    assert [record["event"] for record in json.loads(audit.stdout)["records"]] == ["disabled"]
    assert doctor.returncode == 0, doctor.stderr
    report = json.loads(doctor.stdout)
    (state,) = [check for check in report["checks"] if check["name"] == "state"]
    assert state["status"] == "warning"
    assert "read-only" in state["message"]
    assert report["verdict"] == "warnings"
    assert enable.returncode == 1
    said = make.normalize(enable.stderr)
    assert "cannot change the host state" in said
    assert "it is read-only" in said
    for result in (listed, inspected, shown, audit, doctor, enable):
        assert "unable to open database file" not in result.stderr
        assert "Traceback" not in result.stderr


def test_doctor_reports_a_damaged_state_database_with_how_to_recover_and_exits_1(venv, home, make):
    home.mkdir(parents=True)
    (home / "state.sqlite").write_bytes(b"this is no database, it was overwritten " * 200)

    people = venv.symphony(home, "doctor")
    machines = venv.symphony(home, "doctor", "--json")

    assert people.returncode == machines.returncode == 1
    assert "Traceback" not in people.stderr + machines.stderr
    text = make.normalize(people.stdout)
    assert "broken state: the host state file" in text
    assert "is damaged or is not a Symphony state database" in text
    assert "what to do: move it aside; the host will create a new one" in text
    assert "verdict: broken" in text
    report = json.loads(machines.stdout)
    assert report["verdict"] == "broken"
    assert report["schema"] == 1
    assert {check["name"]: check["status"] for check in report["checks"]}["state"] == "broken"
    assert report["extensions"]["total"] >= 3, "discovery still ran without the state"


def test_doctor_ends_with_a_verdict_and_exits_0_when_nothing_is_broken(venv, home, make):
    people = venv.symphony(home, "doctor")

    assert people.returncode == 0, people.stderr
    last = people.stdout.strip().splitlines()[-1]
    assert last.startswith("verdict: "), last
    assert venv.symphony_json(home, "doctor")["verdict"] in ("ok", "warnings")


def test_doctor_calls_a_broken_policy_file_broken(venv, home, make):
    home.mkdir(parents=True)
    (home / "policy.toml").write_text("[[rules]]\naction = 'maybe'\n", encoding="utf-8")

    result = venv.symphony(home, "doctor", "--json")

    assert result.returncode == 1
    report = json.loads(result.stdout)
    (policy,) = [check for check in report["checks"] if check["name"] == "policy"]
    assert policy["status"] == "broken"
    assert "invalid policy file" in policy["message"]


# Output for pipes and scripts


def test_a_table_read_through_a_pipe_is_plain_and_never_wraps_an_id(venv, home, make):
    narrow = {"COLUMNS": "40"}

    listed = venv.symphony(home, "list", env=narrow)
    disabled = venv.symphony(home, "disable", LONG)
    audit = venv.symphony(home, "audit", env=narrow)

    assert listed.returncode == disabled.returncode == audit.returncode == 0, listed.stderr + audit.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "kind", "version", "state", "distribution", "problem"]
    (row,) = [line for line in lines if LONG in line]
    assert row.split()[:5] == [LONG, "motif", "1.0.0", "validated", LONG.replace(".", "-")]
    assert not any(char in listed.stdout for char in "┃│━─┏"), "no box drawing in plain output"
    assert "\x1b[" not in listed.stdout, "no terminal colours in plain output"
    (event,) = [line for line in audit.stdout.splitlines() if LONG in line]
    assert event.split()[3:5] == [LONG, "disabled"]


def test_every_json_object_says_the_version_of_its_shape(venv, home):
    listed = venv.symphony_json(home, "list")
    inspected = venv.symphony_json(home, "inspect", CONFIGURED)
    permissions = venv.symphony_json(home, "permissions", CONFIGURED)
    shown = venv.symphony_json(home, "config", "show", CONFIGURED)
    audit = venv.symphony_json(home, "audit")

    assert {item["schema"] for item in listed} == {1}
    for document in (inspected, permissions, shown, audit):
        assert document["schema"] == 1
    assert shown["layers"] == ["default", "file", "env", "override"]


def test_ctrl_c_stops_a_command_with_exit_status_130_and_no_traceback(venv, home, tmp_path):
    marker = tmp_path / "napping"
    process = subprocess.Popen(
        [str(venv.root / "bin" / "symphony"), "--home", str(home), "learn", SLOW, "--call", "nap"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**venv.env, "ACME_NAPPING": str(marker)},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():  # the extension's nap has begun
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the extension never started its nap"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 130, errors
    assert "Traceback" not in errors
    assert errors.strip().splitlines()[-1] == "stopped (Ctrl-C)"


# Consent: the tier that enforces a grant


def test_the_consent_summary_names_the_tier_that_will_enforce_the_grant(venv, home, make):
    isolated = venv.symphony(home, "permissions", CONFIGURED)
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text(
        f'[[trust]]\ndistribution = "{CONFIGURED.replace(".", "-")}"\n', encoding="utf-8"
    )
    trusted = venv.symphony(home, "permissions", CONFIGURED)
    trusted_json = venv.symphony_json(home, "inspect", CONFIGURED)

    assert isolated.returncode == trusted.returncode == 0, isolated.stderr + trusted.stderr
    said = make.normalize(isolated.stdout)
    assert "enforced by the kernel: it runs in isolated worker processes" in said
    assert "guard" not in said
    said = make.normalize(trusted.stdout)
    assert "enforced in the host's own process by the guard" in said
    assert "which is not a sandbox" in said
    assert trusted_json["enforced_by"] == "guard"
    assert venv.symphony_json(home, "permissions", LONG)["enforced_by"] == "isolated"


# Config: undo what was set


def test_config_unset_removes_what_set_stored_so_the_layers_below_apply_again(venv, home, make):
    assert venv.symphony(home, "config", "set", CONFIGURED, "threshold", "7").returncode == 0
    assert venv.symphony(home, "config", "set", CONFIGURED, "label", "fancy").returncode == 0
    shown = venv.symphony(home, "config", "show", CONFIGURED)
    assert "outranks the one before: default < file < env < override" in make.normalize(shown.stdout)

    unset = venv.symphony(home, "config", "unset", CONFIGURED, "threshold")
    after = venv.symphony_json(home, "config", "show", CONFIGURED)
    missing = venv.symphony(home, "config", "unset", CONFIGURED, "threshold")
    everything = venv.symphony(home, "config", "unset", CONFIGURED, "--all")
    cleared = venv.symphony_json(home, "config", "show", CONFIGURED)
    neither = venv.symphony(home, "config", "unset", CONFIGURED)
    both = venv.symphony(home, "config", "unset", CONFIGURED, "label", "--all")

    assert (unset.returncode, unset.stdout.strip()) == (0, f"unset threshold of {CONFIGURED}")
    assert after["config"] == {"threshold": 3, "label": "fancy"}
    assert after["sources"] == {"threshold": "default", "label": "override label"}
    assert missing.returncode == 1
    said = make.normalize(missing.stderr)
    assert "no value of 'threshold' is set here to remove (values set here: label)" in said
    assert (everything.returncode, everything.stdout.strip()) == (0, f"unset label of {CONFIGURED}")
    assert cleared["sources"] == {"threshold": "default", "label": "default"}
    assert neither.returncode == both.returncode == 2
    assert "give either KEY or --all" in neither.stderr
    events = [r["event"] for r in venv.symphony_json(home, "audit", CONFIGURED)["records"]]
    assert events == ["config_set", "config_set", "config_cleared", "config_cleared"]


def test_set_config_with_none_is_a_config_error_that_says_how_to_unset(venv, home, hosts):
    host = hosts(home)

    refused = host.refuses("set_config", CONFIGURED, "threshold", None)
    host("set_config", CONFIGURED, "threshold", "9")
    removed = host("unset_config", CONFIGURED, "threshold")

    assert refused["error"] == "ConfigError"
    assert "cannot set 'threshold': its value is given as NoneType, not as text" in refused["message"]
    assert f"Host.unset_config('{CONFIGURED}', 'threshold')" in refused["hint"]
    assert removed == ["threshold"]
    assert host("config", CONFIGURED)["sources"]["threshold"] == "default"


def test_importing_a_config_model_in_the_hosts_process_runs_its_package_under_the_guard(home, hosts):
    host = hosts(home, isolation="guard")

    refused = host.refuses("config", PEEKS)

    assert refused["error"] == "GuardDenied"
    assert "fs.read of /etc/passwd was not granted" in refused["message"]
    assert host("modules", "acme_cli_peeks") == []


# The audit log


def test_the_audit_log_reads_by_extension_and_time(venv, home, make):
    assert venv.symphony(home, "disable", LONG).returncode == 0
    assert venv.symphony(home, "enable", LONG).returncode == 0
    assert venv.symphony(home, "config", "set", CONFIGURED, "threshold", "4").returncode == 0

    everything = venv.symphony_json(home, "audit")
    mine = venv.symphony_json(home, "audit", LONG)
    recent = venv.symphony_json(home, "audit", LONG, "--since", "1h")
    later = venv.symphony_json(home, "audit", "--since", "2999-01-01")
    earlier = venv.symphony_json(home, "audit", "--since", "2000-01-01T00:00")
    people = venv.symphony(home, "audit", LONG.upper())
    wrong = venv.symphony(home, "audit", "--since", "yesterday")

    assert [(r["extension"], r["event"]) for r in everything["records"]] == [
        (LONG, "disabled"),
        (LONG, "enabled"),
        (CONFIGURED, "config_set"),
    ]
    assert everything["records"][2]["detail"] == {"key": "threshold"}, "the key, never the value"
    assert [r["event"] for r in mine["records"]] == ["disabled", "enabled"]
    assert recent["records"] == mine["records"]
    assert mine["records"][0]["actor"].startswith("cli")
    assert later["records"] == []
    assert earlier["records"] == everything["records"]
    assert people.returncode == 0, people.stderr
    assert [line.split()[4] for line in people.stdout.splitlines()[1:]] == ["disabled", "enabled"]
    assert wrong.returncode == 2
    assert "'yesterday' is neither a date or time" in make.normalize(wrong.stderr)
