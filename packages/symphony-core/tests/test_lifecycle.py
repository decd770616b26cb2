"""The lifecycle of real installed extensions, driven through ``symphony_core.Host`` in its own process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from symphony_core._security._sandbox._probe import probe

SYNC = """
from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        self.opened = f"opened by {context.id} {context.version}"

    def describe(self):
        return self.opened
"""

ASYNC = """
import asyncio

from symphony_core import Extension


class Ext(Extension):
    async def activate(self, context):
        await asyncio.sleep(0.01)
        self.opened = f"opened by {context.id} {context.version}"

    async def describe(self):
        await asyncio.sleep(0)
        return self.opened
"""

# Leaves a line in a journal on every import and every deactivate, so a test sees both happen.
JOURNALED = """
from pathlib import Path

JOURNAL = Path({journal!r})
with JOURNAL.open("a") as journal:
    journal.write("imported\\n")

from symphony_core import Extension


class Ext(Extension):
    def deactivate(self):
        with JOURNAL.open("a") as journal:
            journal.write("deactivated\\n")

    def answer(self):
        return {answer!r}
"""

# Leaves a task running forever; writes to its journal when that task is cancelled.
TICKER = """
import asyncio
from pathlib import Path

from symphony_core import Extension


class Ext(Extension):
    async def activate(self, context):
        self.task = asyncio.get_running_loop().create_task(self.tick())

    async def tick(self):
        try:
            while True:
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            Path({journal!r}).write_text("cancelled\\n")
            raise

    async def ticking(self):
        return not self.task.done()
"""

ACTIVATE_BOOM = """
from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        raise RuntimeError("cannot open the database")
"""

RUN = [("validated", "loaded"), ("loaded", "configured"), ("configured", "active")]
STOP = [("active", "deactivated"), ("deactivated", "unloaded")]


def transitions(events, ext_id):
    return [(old, new) for extension, old, new, _ in events if extension == ext_id]


def test_sync_and_async_activate_both_bring_an_extension_to_active(install, make, home, hosts):
    install(make.extension("acme.sync", code=SYNC), make.extension("acme.async", code=ASYNC))
    host = hosts(home, isolation="guard")  # the async one's own event loop, in this process

    host("start", "acme.sync")
    host("start", "acme.async")

    assert host.info("acme.sync")["state"] == host.info("acme.async")["state"] == "active"
    assert host("call", "acme.sync", "describe") == "opened by acme.sync 1.0.0"
    assert host("call", "acme.async", "describe") == "opened by acme.async 1.0.0"


def test_deactivate_and_unload_stop_an_extension_and_drop_its_code(install, make, home, hosts, tmp_path):
    journal = tmp_path / "journal.txt"
    install(make.extension("acme.stoppable", code=JOURNALED.format(journal=str(journal), answer="42")))
    # Unguarded: its journal file lies outside any grant; the guard has its own tests.
    host = hosts(home, isolation="none")
    host("start", "acme.stoppable")
    assert host("call", "acme.stoppable", "answer") == "42"

    host("deactivate", "acme.stoppable")
    assert host.info("acme.stoppable")["state"] == "deactivated"
    assert journal.read_text() == "imported\ndeactivated\n"
    refused = host.refuses("call", "acme.stoppable", "answer")
    assert "it is deactivated, not active" in refused["message"]

    host("unload", "acme.stoppable")
    assert host.info("acme.stoppable")["state"] == "unloaded"
    assert host("modules", "acme_stoppable") == []

    host("start", "acme.stoppable")  # imported afresh
    assert host("call", "acme.stoppable", "answer") == "42"
    assert journal.read_text() == "imported\ndeactivated\nimported\n"


def test_unload_cancels_what_an_async_extension_left_running_and_ends_its_loop(
    install, make, home, hosts, tmp_path
):
    journal = tmp_path / "journal.txt"
    install(make.extension("acme.ticker", code=TICKER.format(journal=str(journal))))
    host = hosts(home, isolation="none")  # unguarded: its journal file lies outside any grant
    host("start", "acme.ticker")
    assert host("call", "acme.ticker", "ticking")
    assert host("loop_threads") == ["symphony-loop-acme.ticker"]

    host("unload", "acme.ticker")

    assert host("loop_threads") == []
    assert journal.read_text() == "cancelled\n"


def test_reload_picks_up_the_changed_code_of_an_editable_extension(install, make, home, hosts, tmp_path):
    journal = tmp_path / "journal.txt"
    project = make.extension("acme.live", code=JOURNALED.format(journal=str(journal), answer="first"))
    (tree,) = install(project, editable=True)
    # Unguarded: its journal file lies outside any grant; the guard has its own tests.
    host = hosts(home, isolation="none")
    host("start", "acme.live")
    assert host("call", "acme.live", "answer") == "first"

    package = tree / "src" / "acme_live"
    (package / "__init__.py").write_text(JOURNALED.format(journal=str(journal), answer="the second version"))
    (package / "symphony.toml").write_text(make.manifest("acme.live", name="Live, renamed"))
    assert host("reload", "acme.live") == "Ext"

    assert host("call", "acme.live", "answer") == "the second version"
    info = host.info("acme.live")
    assert (info["state"], info["name"]) == ("active", "Live, renamed")
    assert journal.read_text() == "imported\ndeactivated\nimported\n"


def test_a_rescan_that_finds_a_running_extension_changed_stops_it_first(install, make, home, hosts, tmp_path):
    journal = tmp_path / "journal.txt"
    (tree,) = install(
        make.extension("acme.edited", code=JOURNALED.format(journal=str(journal), answer="first")),
        editable=True,
    )
    host = hosts(home, isolation="none")  # unguarded: its journal file lies outside any grant
    host("start", "acme.edited")
    (tree / "src" / "acme_edited" / "symphony.toml").write_text(make.manifest("acme.edited", name="Edited"))

    host("rescan")

    assert journal.read_text() == "imported\ndeactivated\n", "its deactivate ran before it was replaced"
    info = host.info("acme.edited")
    assert (info["state"], info["name"]) == ("validated", "Edited")
    assert host("modules", "acme_edited") == []
    assert transitions(host("events"), "acme.edited")[-3:] == [STOP[0], STOP[1], ("discovered", "validated")]
    host("start", "acme.edited")  # the new installation starts afresh
    assert host("call", "acme.edited", "answer") == "first"
    assert journal.read_text() == "imported\ndeactivated\nimported\n"


# Asks for its own data folder and writes there when it stops: that works in a worker too.
DATA_JOURNALED = """
from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        self.journal = context.data_dir / "journal.txt"

    def deactivate(self):
        with self.journal.open("a") as journal:
            journal.write("deactivated\\n")

    def answer(self):
        return 42
"""
WRITES_DATA = """
[[permissions]]
type = "fs.write"
paths = ["{data}"]
reason = "Keeps a journal of when it stops."
"""


@pytest.mark.skipif(
    sys.platform != "linux" or not probe().has("landlock"),
    reason="the isolated tier needs Linux and Landlock",
)
def test_a_rescan_stops_the_workers_of_an_isolated_extension_whose_installation_changed(
    install, make, home, hosts
):
    project = make.extension(
        "acme.reworked", code=DATA_JOURNALED, manifest_text=make.manifest("acme.reworked", extra=WRITES_DATA)
    )
    (tree,) = install(project, editable=True)
    host = hosts(home, isolation="isolated")
    host("grant", "acme.reworked")
    assert host("start", "acme.reworked") == "RemoteExtension"
    assert host("call", "acme.reworked", "answer") == 42
    assert host.descendants(), "its workers run"
    manifest = make.manifest("acme.reworked", name="Reworked", extra=WRITES_DATA)
    (tree / "src" / "acme_reworked" / "symphony.toml").write_text(manifest)

    host("rescan")

    assert host.descendants() == [], "no worker of the replaced extension is left running"
    journal = home / "extensions" / "acme.reworked" / "data" / "journal.txt"
    assert journal.read_text() == "deactivated\n", "its workers ran its deactivate before they stopped"
    assert host.info("acme.reworked")["state"] == "validated"


@pytest.mark.skipif(
    sys.platform != "linux" or not probe().has("landlock"),
    reason="the isolated tier needs Linux and Landlock",
)
def test_preparing_a_host_readies_the_isolated_tier_ahead_without_running_any_extension(
    install, make, home, hosts
):
    from symphony_core._store._home import Home

    install(make.greeter("acme.ready"))
    sandbox = "symphony_core._security._sandbox._process"
    guarded = hosts(home, isolation="guard")
    assert guarded("prepare") is False
    assert sandbox not in guarded("modules", "symphony_core"), "a host that isolates nothing pays nothing"
    host = hosts(home, isolation="isolated")
    assert sandbox not in host("modules", "symphony_core")
    boot = Home(home).cache_dir / "worker-bytecode"
    assert not boot.exists()

    assert host("prepare") is True

    ready = set(host("modules", "symphony_core", "acme_ready"))
    assert {sandbox, "symphony_core._security._sandbox._pool", "symphony_core._security._grants"} <= ready
    assert not any(name.startswith("acme_ready") for name in ready), "no extension code ran in the host"
    assert host.descendants() == [], "no worker was started"
    assert any(boot.rglob("*.pyc")), "the workers' boot bytecode was written"
    assert host("prepare") is True  # again: nothing left to do
    host("grant", "acme.ready")
    assert host("start", "acme.ready") == "RemoteExtension"
    assert host("call", "acme.ready", "greet", "ada") == "hello ada, from acme.ready"


def test_a_disabled_extension_is_refused_until_it_is_enabled_again(install, make, home, hosts):
    install(make.greeter("acme.switchable"))
    host = hosts(home)
    host("start", "acme.switchable")

    host("disable", "acme.switchable")
    info = host.info("acme.switchable")
    assert (info["state"], info["enabled"]) == ("deactivated", False)
    refused = host.refuses("start", "acme.switchable")
    assert "acme.switchable: is disabled" in refused["message"]
    assert refused["hint"] == "run `symphony enable acme.switchable` to allow it"
    assert host.info("acme.switchable")["state"] != "active"

    host("enable", "acme.switchable")
    host("start", "acme.switchable")
    assert host("call", "acme.switchable", "greet", "ada") == "hello ada, from acme.switchable"


def test_enablement_survives_a_restart_of_the_host(venv, install, make, home, hosts):
    install(make.greeter("acme.remembered"))
    first = hosts(home)
    first("disable", "acme.remembered")
    first.close()

    assert make.by_id(venv.symphony_json(home, "list"))["acme.remembered"]["enabled"] is False
    second = hosts(home)
    assert "is disabled" in second.refuses("start", "acme.remembered")["message"]
    second.close()

    assert venv.symphony(home, "enable", "acme.remembered").returncode == 0
    third = hosts(home)
    third("start", "acme.remembered")
    assert third.info("acme.remembered")["enabled"] is True


def test_an_observer_sees_every_lifecycle_transition(install, make, home, hosts):
    install(make.greeter("acme.watched"), make.extension("acme.doomed", code=ACTIVATE_BOOM))
    host = hosts(home, isolation="guard")

    host("start", "acme.watched")
    host("deactivate", "acme.watched")
    host("unload", "acme.watched")
    host.refuses("start", "acme.doomed")
    events = host("events")

    assert transitions(events, "acme.watched") == [("discovered", "validated"), *RUN, *STOP]
    assert transitions(events, "acme.doomed") == [
        ("discovered", "validated"),
        *RUN[:2],
        ("configured", "failed"),
    ]
    (failure,) = [event for event in events if event[2] == "failed"]
    assert failure[3] == "activate raised RuntimeError: cannot open the database"
    # The host's own audit log agrees with what the observer saw from loading on (what discovery
    # concludes is worked out again on every start, so it is not audited).
    audited = [(d["from"], d["to"]) for event, d in host("audit", "acme.watched") if event == "lifecycle"]
    assert audited == transitions(events, "acme.watched")[1:]


def test_an_observer_that_raises_does_not_break_the_host(install, make, home, hosts):
    install(make.greeter("acme.observed"))
    host = hosts(home, broken_observer=True)

    host("start", "acme.observed")
    assert host("call", "acme.observed", "greet", "ada") == "hello ada, from acme.observed"
    host("deactivate", "acme.observed")

    assert host.info("acme.observed")["state"] == "deactivated"
    # The well-behaved observer registered beside it still saw every transition.
    assert transitions(host("events"), "acme.observed") == [("discovered", "validated"), *RUN, STOP[0]]
    stderr = host.close()
    assert "an observer of symphony_lifecycle_event raised" in stderr
    assert "RuntimeError: this observer is broken" in stderr


WHERE = """
import asyncio
import threading

from symphony_core import Extension, nonblocking


class Ext(Extension):
    @nonblocking
    async def marked(self):
        return threading.current_thread().name

    async def plain(self):
        return threading.current_thread().name

    @nonblocking
    async def stuck(self):
        await asyncio.sleep(30)


class Override(Ext):
    async def marked(self):  # overridden, and not marked again
        return threading.current_thread().name
"""

AWAIT_WHERE = r"""
import asyncio, json, sys
from symphony_core import BudgetExceeded, Host

host = Host(sys.argv[1], isolation="guard", call_budget=1.0)
for extension in ("acme.marked", "acme.override"):
    host.grant(extension)
    host.start(extension)


async def main():
    seen = {
        "marked": await host.acall("acme.marked", "marked"),
        "plain": await host.acall("acme.marked", "plain"),
        "override": await host.acall("acme.override", "marked"),
    }
    try:
        await host.acall("acme.marked", "stuck")
    except BudgetExceeded as exc:
        seen["stuck"] = exc.message
    return seen


print(json.dumps(asyncio.run(main())))
host.close()
"""


def test_a_method_marked_nonblocking_is_awaited_on_the_callers_loop_and_nothing_else_is(
    install, make, venv, home
) -> None:
    install(
        make.extension("acme.marked", code=WHERE),
        make.extension("acme.override", code=WHERE, cls="Override"),
    )
    done = subprocess.run(
        [str(venv.python), "-c", AWAIT_WHERE, str(home)],
        capture_output=True,
        text=True,
        env=venv.env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["marked"] == "MainThread"  # no hop to its loop and back
    assert seen["plain"] == "symphony-loop-acme.marked"
    assert seen["override"] == "symphony-loop-acme.override", "an override is not marked by its base"
    assert "1 s" in seen["stuck"], "the host's call budget still cuts it off"
