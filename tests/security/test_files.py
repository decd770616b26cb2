"""Attacks on files: reaching a secret outside every grant, or writing where no grant reaches.

The secret is the user's ``~/.ssh/id_rsa`` (in the test's own home folder); no grant names it.
"""

from __future__ import annotations

import json
import time

import pytest


@pytest.mark.parametrize("target", ["user home", "root"])
def test_a_granted_folder_swapped_for_a_symlink_does_not_widen_the_next_workers_grant(
    scene, steps, target
) -> None:
    ext = "hostile.symlink"
    models = scene.cache(ext) / "models"
    models.mkdir(parents=True)
    (models / "weights.bin").write_bytes(b"\0" * 16)
    pointed = str(scene.user) if target == "user home" else "/"
    through_link = str(models / (".ssh/id_rsa" if target == "user home" else str(scene.secret)[1:]))

    outcome = scene.run(
        [
            steps.call(ext, "swap", pointed),
            {"op": "restart", "ext": ext, "label": "restart"},
            steps.call(ext, "read", through_link, label="read through the link"),
            steps.call(ext, "read", str(scene.secret), label="read directly"),
            {"op": "stop", "ext": ext, "label": "stop"},
            {"op": "start", "ext": ext, "label": "start again"},
            steps.call(ext, "read", through_link, label="read after a second start"),
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )

    reads = [outcome.step(label) for label in ("read through the link", "read directly")]
    reads.append(outcome.step("read after a second start"))
    got = [step["value"] for step in reads if step["ok"] and step["value"]["ok"]]
    assert not got, f"the secret was read after the swap: {got}\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


@pytest.mark.parametrize("ext", ["hostile.subprocess-any", "hostile.subprocess-folder"])
def test_a_subprocess_grant_does_not_let_the_extension_read_every_file(scene, steps, ext) -> None:
    outcome = scene.run(
        [
            steps.call(ext, "read", str(scene.secret), label="read the secret"),
            steps.call(ext, "listdir", str(scene.user / ".ssh"), label="list the secret's folder"),
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )

    for label in ("read the secret", "list the secret's folder"):
        step = outcome.step(label)
        assert not (step["ok"] and step["value"]["ok"]), f"{label}: went through\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_folder_beside_the_hosts_script_named_like_the_extensions_package_stays_unreadable(
    scene, steps
) -> None:
    ext = "hostile.appconfig"
    beside = scene.app / "appconfig"
    beside.mkdir()
    (beside / "secret.txt").write_text(scene.secret_text, encoding="utf-8")

    outcome = scene.run(
        [
            steps.call(ext, "portions", label="the package as the worker sees it"),
            steps.call(ext, "read", str(beside / "secret.txt"), label="read beside the script"),
            steps.call(ext, "listdir", str(beside), label="list beside the script"),
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )

    for label in ("read beside the script", "list beside the script"):
        step = outcome.step(label)
        assert not (step["ok"] and step["value"]["ok"]), f"{label}: went through\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_pth_file_a_wheel_installs_neither_runs_in_a_worker_nor_widens_what_it_reads(
    scene, steps, arena
) -> None:
    ext = "hostile.pth"
    began = time.time()

    outcome = scene.run(
        [
            steps.call(
                ext, "read", str(arena.pth_folder / "secret.txt"), label="read the path line's folder"
            ),
            steps.call(ext, "listdir", str(arena.pth_folder), label="list the path line's folder"),
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )

    markers = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in arena.pth_markers.glob("*.json")
        if path.stat().st_mtime >= began
    ]
    hosts = [marker for marker in markers if marker["cwd"] == str(scene.app)]
    workers = [marker for marker in markers if marker["worker"]]
    assert hosts, (
        f"the .pth import line did not even run in the host process: the attack was not set up {markers}"
    )
    assert not workers, (
        f"the .pth import line ran in {len(workers)} worker(s); restricted: "
        f"{[marker['restricted'] for marker in workers]}; read the secret: "
        f"{[marker['secret'] == arena.pth_secret for marker in workers]}\n{outcome.describe()}"
    )
    for label in ("read the path line's folder", "list the path line's folder"):
        step = outcome.step(label)
        assert not (step["ok"] and step["value"]["ok"]), f"{label}: went through\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_grant_that_climbs_out_of_its_folder_with_dot_dot_is_refused_when_discovered(scene, steps) -> None:
    ext = "hostile.dotdot"
    scene.home.mkdir(exist_ok=True)
    policy = scene.home / "policy.toml"
    policy.write_text('[[rules]]\naction = "allow"\nextension = "nobody.at-all"\n', encoding="utf-8")

    outcome = scene.run(
        [
            {"op": "inspect", "ext": ext, "label": "inspect"},
            *steps.start(ext),
            steps.call(ext, "trust_myself", label="write a trust entry"),
        ],
        attackers=[ext],
    )

    info = outcome.value("inspect")
    assert info["state"] == "failed", f"a `..` grant was accepted at discovery: {info}\n{outcome.describe()}"
    problem = info["problem"] or {}
    assert ".." in problem.get("message", ""), f"the refusal does not say what is wrong: {problem}"
    assert outcome.error(f"start {ext}") is not None, outcome.describe()
    assert "[[trust]]" not in policy.read_text(encoding="utf-8")
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_hard_link_to_the_secret_cannot_be_made_or_read(scene, steps) -> None:
    ext = "hostile.misc"

    outcome = scene.run(
        [steps.call(ext, "hard_link", str(scene.secret), label="link")],
        setup=steps.start(ext),
        attackers=[ext],
    )

    linked = outcome.value("link")
    assert not linked["link"]["ok"], f"a hard link to the secret was made: {linked}"
    assert not linked["read"]["ok"], f"the secret was read through a hard link: {linked}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_another_extensions_folders_and_the_hosts_own_files_are_out_of_reach(scene, steps) -> None:
    ext = "hostile.misc"
    canary_note = scene.data(steps.CANARY) / "note.txt"
    bytecode = scene.home / "cache" / "worker-bytecode"
    planted = bytecode / "planted.py"

    outcome = scene.run(
        [
            steps.call(ext, "read", str(canary_note), label="read the canary's data"),
            steps.call(ext, "write", str(canary_note), "overwritten", label="write the canary's data"),
            steps.call(ext, "listdir", str(scene.cache(steps.CANARY)), label="list the canary's cache"),
            steps.call(ext, "read", str(scene.home / "state.sqlite"), label="read the state database"),
            steps.call(ext, "write", str(scene.home / "state.sqlite"), "junk", "a", label="write the state"),
            steps.call(ext, "write", str(planted), "print('planted')", label="plant host bytecode"),
            steps.call(ext, "listdir", str(bytecode), label="list host bytecode"),
            steps.call(
                ext, "move", str(scene.data(ext)), str(scene.cache(ext) / "data"), label="move own data"
            ),
            steps.call(
                ext,
                "move",
                str(scene.data(steps.CANARY)),
                str(scene.cache(ext) / "prey"),
                label="move canary data",
            ),
            steps.call(ext, "link_neighbour", str(scene.data(steps.CANARY)), label="link to the canary"),
            {"op": "restart", "ext": ext, "label": "restart"},
            steps.call(ext, "read", str(scene.data(ext) / "neighbour" / "note.txt"), label="read via link"),
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )

    for label in (
        "read the canary's data",
        "write the canary's data",
        "list the canary's cache",
        "read the state database",
        "write the state",
        "plant host bytecode",
        "move own data",
        "move canary data",
        "read via link",
    ):
        step = outcome.step(label)
        assert not (step["ok"] and step["value"]["ok"]), f"{label}: went through\n{outcome.describe()}"
    assert not planted.exists()
    # workers load their bytecode from the host's cache, so they may list and read it, never write it
    assert outcome.value("list host bytecode")["ok"], outcome.describe()
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_program_copied_into_memory_does_not_run_without_a_subprocess_grant(scene, steps) -> None:
    ext = "hostile.misc"

    outcome = scene.run(
        [steps.call(ext, "memfd_exec", label="run from a memfd")], setup=steps.start(ext), attackers=[ext]
    )

    ran = outcome.value("run from a memfd")
    assert not (ran["ok"] and "ran from a memfd" in ran["value"]), (
        f"a program ran from a memfd without a subprocess grant: {ran}"
    )
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()
