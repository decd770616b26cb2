"""Every way an installed extension can be broken, all installed at once beside a healthy one.

Each broken extension ends in ``failed`` with a reason and what to do about it; the healthy one runs,
and neither the host process nor the ``symphony`` command goes down.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

HEALTHY = "acme.healthy"
TWIN = "acme.twin"
BUDGET = 1.0

pytestmark = pytest.mark.usefixtures("broken_world")

IMPORT_BOOM = """
raise RuntimeError("the model file is missing")
"""

ACTIVATE_BOOM = """
from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        raise RuntimeError("cannot open the database")
"""

ACTIVATE_HANGS = """
import time

from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        time.sleep(30)
"""

ASYNC_ACTIVATE_HANGS = """
import asyncio

from symphony_core import Extension


class Ext(Extension):
    async def activate(self, context):
        await asyncio.sleep(30)
"""

# Found only when the host loads or activates the extension: discovery must not import code to see them.
FAILS_AT_START = {
    "acme.import-boom": ("import", "RuntimeError: the model file is missing"),
    "acme.activate-boom": ("activate", "RuntimeError: cannot open the database"),
    "acme.activate-hangs": ("activate", f"did not finish within {BUDGET:g} s"),
    "acme.async-hangs": ("activate", f"did not finish within {BUDGET:g} s"),
    "acme.no-class": ("import", "names 'Missing', which module 'acme_no_class' does not define"),
}
# Found by discovery, from metadata and manifests alone.
FAILS_AT_DISCOVERY = {
    "acme.bad-toml": ("manifest", "cannot read manifest"),
    "acme.bad-field": ("manifest", "summary: String should have at least 1 character"),
    "acme.incompatible": (
        "incompatible",
        "was built for symphony-motifs>=9, but symphony-motifs 0.1.0 is installed",
    ),
    TWIN: ("conflict", f"the id '{TWIN}' is declared by 2 extensions"),
    "acme.bad-entry": ("entry-point", "entry point 'acme.bad-entry = acme_bad_entry' of distribution"),
    "acme.ghost": ("entry-point", "names module 'acme_ghost_gone', which is not installed"),
}
BROKEN = {**FAILS_AT_START, **FAILS_AT_DISCOVERY}


@pytest.fixture(scope="module")
def broken_world(venv, make, tmp_path_factory):
    """One environment holding every kind of broken extension and one healthy extension."""
    ghost = make.greeter("acme.ghost")
    bad_entry = make.greeter("acme.bad-entry")
    projects = [
        make.greeter(HEALTHY),
        make.extension("acme.import-boom", code=IMPORT_BOOM),
        make.extension("acme.activate-boom", code=ACTIVATE_BOOM),
        make.extension("acme.activate-hangs", code=ACTIVATE_HANGS),
        make.extension("acme.async-hangs", code=ASYNC_ACTIVATE_HANGS),
        make.greeter("acme.bad-toml", manifest_text='id = "acme.bad-toml"\nkind = operator\n'),
        make.greeter("acme.bad-field", manifest_text=make.manifest("acme.bad-field", summary="")),
        make.greeter(
            "acme.incompatible",
            manifest_text=make.manifest("acme.incompatible", targets="symphony-motifs>=9"),
        ),
        make.greeter(TWIN, name="acme-twin-one"),
        make.greeter(TWIN, name="acme-twin-two"),
        make.greeter("acme.no-class", cls="Missing"),
        dataclasses.replace(bad_entry, entry_points={"acme.bad-entry": "acme_bad_entry"}),
        dataclasses.replace(ghost, entry_points={"acme.ghost": "acme_ghost_gone:Ext"}),
    ]
    venv.install(tmp_path_factory.mktemp("broken"), *projects)
    yield
    venv.uninstall(*[project.name for project in projects])


def test_symphony_list_shows_every_broken_extension_beside_the_healthy_one(venv, home, make):
    result = venv.symphony(home, "list", "--json")

    assert result.returncode == 0, result.stderr
    infos = json.loads(result.stdout)
    ids = sorted(info["id"] for info in infos if info["id"].startswith("acme."))
    assert ids == sorted([HEALTHY, *BROKEN, TWIN])
    states = {info["id"]: info["state"] for info in infos}
    assert states[HEALTHY] == "validated"
    assert {states[ext_id] for ext_id in FAILS_AT_DISCOVERY} == {"failed"}
    # Faults in code show only once the code runs: listing imports nothing, so it cannot know yet.
    assert {states[ext_id] for ext_id in FAILS_AT_START} == {"validated"}


def test_every_broken_extension_fails_alone_with_a_reason_and_what_to_do(venv, home, hosts):
    host = hosts(home, activate_budget=BUDGET, isolation="guard")  # failures as the guard tier reports them
    host("discover")

    host("start", HEALTHY)
    for ext_id, (code, reason) in BROKEN.items():
        refused = host.refuses("start", ext_id)
        expected = {"incompatible": "CompatibilityError", "conflict": "ConflictError"}.get(code)
        assert refused["error"] in ((expected,) if expected else ("ExtensionFailed", "BudgetExceeded")), (
            refused
        )
        info = host.info(ext_id)
        assert info["state"] == "failed", info
        assert info["problem"]["code"] == code, info["problem"]
        assert reason in info["problem"]["message"], info["problem"]
        assert info["problem"]["hint"], f"{ext_id} failed without saying what to do: {info['problem']}"
        assert refused["hint"] == info["problem"]["hint"] or refused["error"] == "BudgetExceeded"

    # The host went on: the healthy extension ran through all of that and still answers.
    assert host.info(HEALTHY)["state"] == "active"
    assert host("call", HEALTHY, "greet", "ada") == "hello ada, from acme.healthy"
    host.close()  # and the host process exits 0


def test_an_activate_that_hangs_is_cut_off_within_its_budget(home, hosts):
    host = hosts(home, activate_budget=BUDGET, isolation="guard")  # failures as the guard tier reports them

    for ext_id in ("acme.activate-hangs", "acme.async-hangs"):
        refused = host.refuses("start", ext_id)
        assert refused["seconds"] < BUDGET + 3
        assert refused["error"] == "BudgetExceeded"
        problem = host.info(ext_id)["problem"]
        assert "did not finish" in problem["message"]
        assert "raise the host's budget" in problem["hint"]

    host("start", HEALTHY)
    assert host("call", HEALTHY, "greet", "bob") == "hello bob, from acme.healthy"


def test_a_malformed_manifest_is_reported_with_its_file_and_the_bad_field(venv, home):
    bad_toml = venv.symphony_json(home, "inspect", "acme.bad-toml")
    bad_field = venv.symphony_json(home, "inspect", "acme.bad-field")

    assert bad_toml["manifest"] is None
    assert bad_toml["manifest_file"].endswith("acme_bad_toml/symphony.toml")
    assert f"cannot read manifest {bad_toml['manifest_file']}" in bad_toml["problem"]["message"]
    assert bad_toml["problem"]["hint"] == "fix the TOML syntax"
    assert f"{bad_field['manifest_file']}: summary" in bad_field["problem"]["message"]
    assert "at least 1 character" in bad_field["problem"]["message"]
    assert "fix the fields listed above" in bad_field["problem"]["hint"]


def test_an_extension_built_for_another_release_is_refused_before_import(venv, home, hosts):
    info = venv.symphony_json(home, "inspect", "acme.incompatible")

    assert info["state"] == "failed"
    assert info["problem"]["hint"] == (
        "install a release of 'acme-incompatible' made for symphony-motifs 0.1.0, "
        "or pip install 'symphony-motifs>=9'"
    )
    host = hosts(home)
    refused = host.refuses("start", "acme.incompatible")
    assert refused["error"] == "CompatibilityError"
    assert "it failed: was built for" in refused["message"]
    assert host("modules", "acme_incompatible") == []


def test_two_distributions_claiming_one_id_are_both_refused_naming_each_other(venv, home, hosts):
    twins = [info for info in venv.symphony_json(home, "list") if info["id"] == TWIN]

    assert sorted(info["distribution"] for info in twins) == ["acme-twin-one", "acme-twin-two"]
    for info in twins:
        assert info["state"] == "failed"
        assert info["problem"]["code"] == "conflict"
        assert "'acme-twin-one' (symphony.motifs)" in info["problem"]["message"]
        assert "'acme-twin-two' (symphony.motifs)" in info["problem"]["message"]
        assert info["problem"]["hint"] == "uninstall all but one of these distributions"
    host = hosts(home)
    assert "is declared by 2 extensions" in host.refuses("start", TWIN)["message"]
    assert host("modules", "acme_twin_one", "acme_twin_two") == []


def test_entry_point_faults_are_reported_with_the_fix(venv, home, hosts):
    listed = {info["id"]: info for info in venv.symphony_json(home, "list")}

    assert listed["acme.bad-entry"]["problem"]["hint"] == "write it as 'package.module:ClassName'"
    assert listed["acme.ghost"]["problem"]["hint"].startswith("reinstall 'acme-ghost'")
    # A module that exists but lacks the class is only found by importing it, at load.
    assert listed["acme.no-class"]["state"] == "validated"
    host = hosts(home, isolation="guard")  # an isolated host imports it only in its workers, at activate
    refused = host.refuses("load", "acme.no-class")
    assert "'acme_no_class:Missing' names 'Missing'" in refused["message"]
    assert refused["hint"] == "fix the entry point or the manifest reference"
    assert host.info("acme.no-class")["state"] == "failed"
