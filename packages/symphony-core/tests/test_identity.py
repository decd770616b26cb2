"""Who an extension is: trust and grants bound to the distribution that ships it and to its installed files,
one owner per id, config variables that reach only their extension, and extension code that cannot end
the host by exiting."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import signal
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from symphony_core._model._errors import ConfigError
from symphony_core._security._grants import Policy, evaluate, read_policy
from symphony_core._store._config import config_variables, env_prefix, sharing_prefix
from symphony_core._store._state import HostState

READS_DATA = """
[[permissions]]
type = "fs.read"
paths = ["{data}/*.csv"]
reason = "Read the tables you put in the extension's data folder."
"""
READ = {"type": "fs.read", "paths": ["{data}/*.csv"], "reason": "Read the tables."}

WHO = """
from symphony_core import Extension


class Ext(Extension):
    def which(self):
        return __name__
"""


def _asking(make, ext_id, *, name=None, code=WHO):
    return make.extension(ext_id, code=code, name=name, manifest_text=make.manifest(ext_id, extra=READS_DATA))


def _claims(venv, home, ext_id):
    return {info["distribution"]: info for info in venv.symphony_json(home, "list") if info["id"] == ext_id}


def _policy(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text(text, encoding="utf-8")


# Trust names a distribution


def test_a_trust_entry_that_names_no_distribution_trusts_nothing_and_says_what_to_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[trust]]\npublisher = "acme"\n\n[[trust]]\nextension = "acme.tools"\n\n'
        '[[trust]]\ndistribution = "acme-tools"\n',
        encoding="utf-8",
    )
    trust = read_policy(policy)

    with caplog.at_level(logging.WARNING, logger="symphony.policy"):
        assert trust.trusts("acme.tools", "mallory-tools") is None
        assert trust.trusts("acme.tools", "acme-tools") == 3

    warned = [record.getMessage() for record in caplog.records]
    assert len(warned) == 4, "entries 1 and 2 for each lookup"
    assert warned[0].startswith(
        "trust entry 1 of the host policy names no distribution, so it does not trust"
    )
    assert 'add `distribution = "NAME"`' in warned[0]
    assert warned[1].startswith("trust entry 2 of the host policy names no distribution")


def test_publisher_and_extension_narrow_a_trust_entry_and_a_pinned_hash_matches_one_installation(
    tmp_path: Path,
) -> None:
    pinned = hashlib.sha256(b"RECORD of one build").hexdigest()
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[trust]]\ndistribution = "Acme_Tools"\npublisher = "acme"\n\n'
        f'[[trust]]\ndistribution = "acme-pinned"\nsha256 = "{pinned.upper()}"\n',
        encoding="utf-8",
    )
    trust = read_policy(policy)

    assert trust.trusts("acme.table", "acme-tools") == 1
    assert trust.trusts("stranger.table", "acme-tools") is None, "another publisher's id in that distribution"
    assert trust.trusts("acme.table", "acme-toolbox") is None, "the same publisher from another distribution"
    assert trust.trusts("acme.pin", "acme-pinned", pinned) == 2
    assert trust.trusts("acme.pin", "acme-pinned", hashlib.sha256(b"another build").hexdigest()) is None
    assert trust.trusts("acme.pin", "acme-pinned", None) is None, (
        "a hash the host cannot check does not match"
    )


# Grants bind to the distribution and its installed files


def _consent(state: HostState, *, distribution: str, sha256: str | None, version: str = "1.0"):
    return evaluate(
        state,
        Policy(),
        extension="acme.weather",
        version=version,
        distribution=distribution,
        requested=[READ],
        sha256=sha256,
    )


def test_a_grant_holds_only_for_the_distribution_and_the_files_it_was_made_to(tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        state.grant(
            "acme.weather", "1.0", [READ], actor="alice", distribution="acme-weather", sha256="a" * 64
        )

        assert _consent(state, distribution="Acme_Weather", sha256="a" * 64).satisfied
        upgrade = _consent(state, distribution="acme-weather", sha256="c" * 64, version="2.0")
        assert upgrade.satisfied, "an upgrade of the same distribution carries the grant over"
        assert upgrade.previous is not None

        impostor = _consent(state, distribution="acme-weather-fork", sha256="a" * 64)
        assert not impostor.satisfied
        assert (impostor.granted, impostor.previous) == (None, None)
        assert impostor.new == (("fs.read", "{data}/*.csv"),)

        rebuilt = _consent(state, distribution="acme-weather", sha256="b" * 64)
        assert not rebuilt.satisfied, "the same version installed from other files asks again"
        assert (rebuilt.granted, rebuilt.previous) == (None, None)
        assert rebuilt.replaced is not None
        assert rebuilt.as_json()["installed_files_changed"] is True


def test_grants_of_a_schema_two_state_file_are_kept_and_bound_to_the_first_distribution_granted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    HostState(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:  # back to what schema 2 wrote
        conn.execute("DROP TABLE grants")
        conn.execute(
            "CREATE TABLE grants (ext_id TEXT NOT NULL, version TEXT NOT NULL, permissions TEXT NOT NULL,"
            " granted_by TEXT NOT NULL, granted_at TEXT NOT NULL, audit_seq INTEGER NOT NULL,"
            " PRIMARY KEY (ext_id, version))"
        )
        conn.execute(
            "INSERT INTO grants VALUES ('acme.weather', '1.0', ?, 'alice', '2024-05-01T10:00:00+00:00', 1)",
            (json.dumps([READ]),),
        )
        conn.execute("PRAGMA user_version = 2")

    with HostState(path) as state:
        (kept,) = state.grants("acme.weather")
        assert (kept.version, kept.granted_by, kept.distribution, kept.sha256) == ("1.0", "alice", None, None)
        first = _consent(state, distribution="acme-weather", sha256="a" * 64)
        assert first.satisfied, "it carries over to the distribution installed now"
        assert first.previous == kept
        state.grant(
            "acme.weather", "1.0", [READ], actor="carried over", distribution="acme-weather", sha256="a" * 64
        )

        assert [grant.distribution for grant in state.grants("acme.weather")] == ["acme-weather"]
        assert not _consent(state, distribution="acme-weather-fork", sha256="a" * 64).satisfied


# Config variables reach only their extension


def test_ids_whose_variables_would_share_a_prefix_get_none_of_them() -> None:
    installed = ["acme-x.y", "acme.x-y", "acme.x_y", "acme.x"]
    environ = {"SYMPHONY_ACME_X_Y__API_KEY": "sk-live-1234", "SYMPHONY_ACME_X__LEVEL": "3"}

    assert env_prefix("acme-x.y") == env_prefix("acme.x-y") == "SYMPHONY_ACME_X_Y__"
    assert sharing_prefix("acme-x.y", installed) == ["acme.x-y", "acme.x_y"]
    assert sharing_prefix("acme.x", installed) == []
    assert config_variables("acme.x", environ, shared_with=[]) == {"SYMPHONY_ACME_X__LEVEL": "3"}
    with pytest.raises(ConfigError) as refused:
        config_variables("acme-x.y", environ, shared_with=["acme.x-y"])
    error = refused.value
    assert error.extension == "acme-x.y"
    assert "SYMPHONY_ACME_X_Y__* would configure 'acme-x.y' and 'acme.x-y' alike" in error.message
    assert "SYMPHONY_ACME_X_Y__API_KEY" in error.message
    assert "sk-live" not in str(error)
    assert "uninstall the extension you do not use" in (error.hint or "")
    # Nothing set, nothing withheld: sharing a prefix is no fault by itself.
    assert config_variables("acme-x.y", {}, shared_with=["acme.x-y"]) == {}


def test_no_extensions_variables_begin_with_another_extensions_prefix() -> None:
    parts = ["a", "b", "ab", "a-b", "a_b"]
    ids = {f"{publisher}.{name}" for publisher, name in itertools.product(parts, repeat=2)}
    ids |= {f"{first}.{second}.{third}" for first, second, third in itertools.product(parts[:3], repeat=3)}

    for one, other in itertools.permutations(ids, 2):
        if env_prefix(one) != env_prefix(other):
            assert not (env_prefix(other) + "FIELD").startswith(env_prefix(one)), (one, other)


LEVELLED = """
from symphony_core import Config, Extension


class Settings(Config):
    level: int = 1


class Ext(Extension):
    pass
"""


def test_variables_two_installed_ids_share_are_refused_naming_both(install, make, venv, home) -> None:
    dotted, dashed = "acme-x.y", "acme.x-y"
    install(
        *(
            make.extension(
                ext_id,
                code=LEVELLED,
                name=name,
                manifest_text=make.manifest(ext_id, config=f"{module}:Settings"),
            )
            for ext_id, name, module in (
                (dotted, "acme-x-dot-y", "acme_x_dot_y"),
                (dashed, "acme-dot-x-y", "acme_dot_x_y"),
            )
        )
    )
    with_variable = dataclasses.replace(venv, env={**venv.env, "SYMPHONY_ACME_X_Y__LEVEL": "7"})

    for ext_id, other in ((dotted, dashed), (dashed, dotted)):
        shown = with_variable.symphony(home, "config", "show", ext_id)
        assert shown.returncode == 1
        message = make.normalize(shown.stderr)
        assert f"SYMPHONY_ACME_X_Y__* would configure '{ext_id}' and '{other}' alike" in message, message
    # Unset, each extension's own layers still configure it.
    assert venv.symphony_json(home, "config", "show", dotted)["config"] == {"level": 1}


# One owner per id


def test_of_two_distributions_declaring_one_id_the_trusted_installation_keeps_it(
    install, make, venv, home, hosts
) -> None:
    install(make.extension("acme.claimed", code=WHO, name="acme-claim-one"))
    install(make.extension("acme.claimed", code=WHO, name="acme-claim-two"))
    before = _claims(venv, home, "acme.claimed")
    assert {info["problem"]["code"] for info in before.values()} == {"conflict"}
    record = next(venv.site_packages.glob("acme_claim_two-1.0.0.dist-info")) / "RECORD"
    sha256 = hashlib.sha256(record.read_bytes()).hexdigest()
    assert before["acme-claim-two"]["distribution_sha256"] == sha256

    _policy(home, f'[[trust]]\ndistribution = "Acme_Claim_Two"\nsha256 = "{sha256}"\n')
    claims = _claims(venv, home, "acme.claimed")

    assert claims["acme-claim-two"]["state"] == "validated"
    refused = claims["acme-claim-one"]
    assert refused["state"] == "failed"
    assert refused["problem"]["code"] == "conflict"
    assert "also declared by 'acme-claim-two'" in refused["problem"]["message"]
    assert "trusted by entry 1 of the host policy" in refused["problem"]["message"]
    assert "from 'acme-claim-one', is not used" in refused["problem"]["message"]
    assert refused["problem"]["hint"] == "uninstall 'acme-claim-one' (`pip uninstall acme-claim-one`)"
    host = hosts(home)
    host("start", "acme.claimed")
    assert host("call", "acme.claimed", "which") == "acme_claim_two"
    loser = host.refuses("start", "acme-claim-one:acme.claimed")
    assert loser["error"] == "ConflictError"
    assert "'acme-claim-two'" in loser["message"]
    assert "'acme-claim-one'" in loser["message"]
    assert host("modules", "acme_claim_one") == []
    host.close()

    # Pinned to other files, the entry trusts neither: both are refused again, and say what to do.
    _policy(home, f'[[trust]]\ndistribution = "acme-claim-two"\nsha256 = "{"0" * 64}"\n')
    assert {info["problem"]["hint"] for info in _claims(venv, home, "acme.claimed").values()} == {
        "uninstall all but one of these distributions"
    }


def test_with_none_trusted_the_distribution_that_holds_the_grant_keeps_its_id(
    install, make, venv, home, hosts
) -> None:
    install(_asking(make, "acme.held", name="acme-held-first"))
    venv.symphony_json(home, "grant", "acme.held", "--yes")
    install(_asking(make, "acme.held", name="acme-held-second"))

    claims = _claims(venv, home, "acme.held")

    assert claims["acme-held-first"]["state"] == "validated"
    assert claims["acme-held-second"]["problem"]["code"] == "conflict"
    assert (
        "keeps it (granted its permissions on this host)" in claims["acme-held-second"]["problem"]["message"]
    )
    host = hosts(home)
    host("start", "acme.held")
    assert host("call", "acme.held", "which") == "acme_held_first"
    assert host.refuses("start", "acme-held-second:acme.held")["error"] == "ConflictError"


def test_a_grant_does_not_pass_to_another_distribution_with_the_same_id_and_version(
    install, make, venv, home, hosts
) -> None:
    install(_asking(make, "acme.bound", name="acme-bound-first"))
    venv.symphony_json(home, "grant", "acme.bound", "--yes")
    install.uninstall("acme-bound-first")
    install(_asking(make, "acme.bound", name="acme-bound-second"))

    summary = venv.symphony_json(home, "permissions", "acme.bound")

    assert (summary["distribution"], summary["satisfied"]) == ("acme-bound-second", False)
    assert (summary["granted_version"], summary["previous_version"]) == (None, None)
    assert summary["needs_consent"] == ["fs.read {data}/*.csv"]
    host = hosts(home)
    assert host.refuses("start", "acme.bound")["error"] == "ConsentRequired"


def test_the_same_version_installed_from_other_files_asks_again_and_says_why(
    install, make, venv, home, hosts
) -> None:
    install(_asking(make, "acme.rebuilt"))
    venv.symphony_json(home, "grant", "acme.rebuilt", "--yes")
    granted = venv.symphony_json(home, "inspect", "acme.rebuilt")["distribution_sha256"]
    host = hosts(home)
    host("start", "acme.rebuilt")
    host.close()

    install.uninstall("acme-rebuilt")
    install(_asking(make, "acme.rebuilt", code=WHO + "\n# another build\n"))
    inspected = venv.symphony_json(home, "inspect", "acme.rebuilt")

    assert inspected["distribution_sha256"] not in (None, granted)
    assert inspected["consent"]["installed_files_changed"] is True
    assert inspected["consent"]["needs_consent"] == ["fs.read {data}/*.csv"]
    host = hosts(home)
    refused = host.refuses("start", "acme.rebuilt")
    assert refused["error"] == "ConsentRequired"
    assert "installed files differ from those version 1.0.0 was granted to" in refused["message"]


# Extension code cannot end the host


EXITS = """
import asyncio
import sys

from symphony_core import Extension


class Ext(Extension):
    def exit_with_code(self):
        raise SystemExit(3)

    def exit_plainly(self):
        sys.exit()

    def interrupt(self):
        raise KeyboardInterrupt

    async def exit_from_a_coroutine(self):
        await asyncio.sleep(0)
        raise SystemExit(4)

    async def interrupt_from_a_coroutine(self):
        raise KeyboardInterrupt

    async def exit_from_a_task_of_its_own(self):
        async def quit():
            raise SystemExit(5)

        asyncio.get_running_loop().create_task(quit())
        await asyncio.sleep(0.05)
        return "still running"

    def greet(self, name):
        return f"hello {name}"

    async def echo(self, value):
        return value

    def deactivate(self):
        sys.exit(6)
"""

EXITS_AT_ACTIVATE = """
from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        raise SystemExit(2)
"""

INTERRUPTS_AT_ACTIVATE = """
from symphony_core import Extension


class Ext(Extension):
    async def activate(self, context):
        raise KeyboardInterrupt
"""


def test_an_extension_that_exits_or_interrupts_fails_alone_and_the_host_goes_on(
    install, make, home, hosts
) -> None:
    install(
        make.extension("acme.quitter", code=EXITS),
        make.extension("acme.quits-early", code=EXITS_AT_ACTIVATE),
        make.extension("acme.interrupts-early", code=INTERRUPTS_AT_ACTIVATE),
    )
    host = hosts(home, call_budget=10.0, isolation="guard")  # in a worker, an exit only ends the worker
    host("start", "acme.quitter")

    for method, raised in [
        ("exit_with_code", "SystemExit(3)"),
        ("exit_plainly", "SystemExit()"),
        ("interrupt", "KeyboardInterrupt()"),
        ("exit_from_a_coroutine", "SystemExit(4)"),
        ("interrupt_from_a_coroutine", "KeyboardInterrupt()"),
    ]:
        refused = host.refuses("call", "acme.quitter", method)
        assert refused["error"] == "ExtensionFailed", refused
        assert raised in refused["message"], refused
        assert refused["message"].startswith("acme.quitter: ")
        assert "report it to the authors of 'acme-quitter'" in refused["hint"]
        assert host("call", "acme.quitter", "greet", "ada") == "hello ada"
    assert host("call", "acme.quitter", "exit_from_a_task_of_its_own") == "still running"
    assert host("call", "acme.quitter", "echo", 7) == 7, "its event loop outlived the task that exited"

    for ext_id, raised in (
        ("acme.quits-early", "SystemExit(2)"),
        ("acme.interrupts-early", "KeyboardInterrupt()"),
    ):
        refused = host.refuses("start", ext_id)
        assert refused["error"] == "ExtensionFailed"
        assert raised in refused["message"]
        assert host.info(ext_id)["state"] == "failed"

    stopped = host.refuses("deactivate", "acme.quitter")
    assert "SystemExit(6)" in stopped["message"]
    assert host.info("acme.quitter")["state"] == "failed"
    host.close()  # and the host process exits 0


NAPS = """
import time

from symphony_core import Extension


class Ext(Extension):
    def nap(self, seconds):
        print("napping", flush=True)  # from here on, a Ctrl-C arrives while its code runs
        time.sleep(seconds)

    def interrupt(self):
        raise KeyboardInterrupt

    async def interrupt_later(self):
        raise KeyboardInterrupt
"""

# A host as an application writes one: Ctrl-C (SIGINT) stops it, whatever extension code runs.
CTRL_C = r"""
import asyncio, sys
from symphony_core import ExtensionFailed, Host

host = Host(sys.argv[1], isolation="guard")  # extension code in the process that gets the Ctrl-C
host.start("acme.napper")
for method in ("interrupt", "interrupt_later"):
    try:
        host.call("acme.napper", method)
    except ExtensionFailed:
        print("call: the extension failed", flush=True)
    try:
        asyncio.run(host.acall("acme.napper", method))
    except ExtensionFailed:
        print("acall: the extension failed", flush=True)
try:
    host.call("acme.napper", "nap", 60)
except KeyboardInterrupt:
    print("stopped by Ctrl-C", flush=True)
    sys.exit(130)
print("the nap ended on its own", flush=True)
"""


def test_a_ctrl_c_still_stops_the_host_while_extension_code_runs(install, make, venv, home) -> None:
    install(make.extension("acme.napper", code=NAPS))
    process = subprocess.Popen(
        [str(venv.python), "-c", CTRL_C, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=venv.env,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(5)]
        assert lines == [
            "call: the extension failed",
            "acall: the extension failed",
            "call: the extension failed",
            "acall: the extension failed",
            "napping",
        ], process.stderr.read() if process.stderr else ""
        process.send_signal(signal.SIGINT)  # the extension said it naps: its code runs
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert out.strip() == "stopped by Ctrl-C"
