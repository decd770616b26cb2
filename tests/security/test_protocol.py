"""Attacks on the host through the worker protocol: its memory, its time, its exceptions, its verdicts.

A worker is not trusted to speak the protocol well: whatever it writes on its pipes, the host must stay
within its memory, answer within its time-outs, raise only ``SymphonyError``, and never present what an
extension says as its own verdict.
"""

from __future__ import annotations

import pytest

EXT = "hostile.wire"
GIB = 1 << 30
HOST_MEMORY_MIB = 512
"""The most memory (peak resident set) the host process may reach while it is attacked."""
VERDICTS = {
    "ConsentRequired",
    "PermissionDenied",
    "GuardDenied",
    "Quarantined",
    "ConfigError",
    "LifecycleError",
}


@pytest.mark.parametrize(
    ("attack", "args"),
    [
        pytest.param("reply_header", [3 * GIB // 2], id="a reply frame announcing 1.5 GiB"),
        pytest.param("event_header", [3 * GIB // 2], id="an event frame announcing 1.5 GiB"),
        pytest.param("zstd_bomb", [15], id="a zstd Arrow frame inflating to 3.75 GiB"),
        pytest.param("stderr_line", [700], id="a 700 MiB line on stderr"),
    ],
)
def test_what_a_worker_sends_cannot_make_its_host_use_gigabytes_of_memory(scene, steps, attack, args) -> None:
    outcome = scene.run(
        [
            {"op": "self", "label": "host before"},
            steps.call(EXT, attack, *args, label="attack"),
            {"op": "sleep", "seconds": 2, "label": "let it arrive"},
            {"op": "self", "label": "host after"},
        ],
        setup=steps.start(EXT),
        attackers=[EXT],
        call_budget=10.0,
        timeout=120,
    )

    after = outcome.value("host after")
    assert after["maxrss_mib"] < HOST_MEMORY_MIB, (
        f"the host's memory peaked at {after['maxrss_mib']} MiB (from "
        f"{outcome.value('host before')['maxrss_mib']} MiB)\n{outcome.describe()}"
    )
    error = outcome.error("attack")
    if attack in ("reply_header", "zstd_bomb"):
        assert error is not None, f"the host accepted the value\n{outcome.describe()}"
        assert error["symphony"], f"the host raised a {error['type']}, not a SymphonyError: {error}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_zstd_bomb_is_small_on_the_wire(scene, steps) -> None:
    """The bomb of the test above is what it claims: a frame of well under 1 MiB."""
    outcome = scene.run(
        [steps.call(EXT, "zstd_bomb_size", 15, label="size")], setup=steps.start(EXT), attackers=[EXT]
    )

    assert outcome.value("size") < 1 << 20


@pytest.mark.parametrize("what", ["fifo-rdwr", "fifo-rdonly", "pipe"])
def test_a_bulk_value_naming_a_fifo_or_a_pipe_as_its_memfd_cannot_hang_the_host(scene, steps, what) -> None:
    outcome = scene.run(
        [steps.call(EXT, "false_memfd", what, label="false memfd")],
        setup=steps.start(EXT),
        attackers=[EXT],
        call_budget=10.0,
        timeout=30,
    )

    assert not outcome.timed_out, f"the host hung on a {what} named as a memfd\n{outcome.describe()}"
    error = outcome.error("false memfd")
    assert error is not None, f"the host accepted it\n{outcome.describe()}"
    assert error["symphony"], f"not refused with a SymphonyError: {error}"
    assert outcome.step("false memfd")["seconds"] < 15
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_malformed_arrow_value_that_makes_polars_panic_reaches_the_host_as_a_symphony_error(
    scene, steps
) -> None:
    outcome = scene.run(
        [steps.call(EXT, "panicking_ipc", label="panicking frame")],
        setup=steps.start(EXT),
        attackers=[EXT],
    )

    error = outcome.error("panicking frame")
    assert error is not None, f"the host accepted a malformed frame\n{outcome.describe()}"
    assert error["symphony"], (
        f"a {error['type']} ({error['mro']}) reached the host's caller: {error['message']}"
    )
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


@pytest.mark.parametrize("forgery", ["raise_consent_required", "raise_lookalike", "raw_failure"])
def test_an_error_an_extension_forges_is_not_presented_as_the_hosts_verdict_on_another(
    scene, steps, forgery
) -> None:
    outcome = scene.run(
        [steps.call(EXT, forgery, steps.CANARY, label="forged")],
        setup=steps.start(EXT),
        attackers=[EXT],
        isolation="auto",
    )

    error = outcome.error("forged")
    assert error is not None, outcome.describe()
    assert error["symphony"], error
    assert error["type"] not in VERDICTS, f"the extension's error became the host's {error['type']}: {error}"
    assert error["extension"] == EXT, f"the error blames {error['extension']!r}, not {EXT!r}: {error}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_worker_that_never_answers_is_cut_off_at_the_call_budget(scene, steps) -> None:
    ext = "hostile.misc"

    outcome = scene.run(
        [steps.call(ext, "hang", label="hang")],
        setup=steps.start(ext),
        attackers=[ext],
        call_budget=3.0,
        timeout=60,
    )

    error = outcome.error("hang")
    assert error is not None, outcome.describe()
    assert error["type"] == "WorkerTimeout", error
    assert outcome.step("hang")["seconds"] < 10
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_worker_that_closes_its_pipes_and_stays_is_reported_and_stopped(scene, steps) -> None:
    ext = "hostile.misc"

    outcome = scene.run(
        [steps.call(ext, "close_pipes", label="close pipes")],
        setup=steps.start(ext),
        attackers=[ext],
        call_budget=20.0,
        timeout=60,
    )

    error = outcome.error("close pipes")
    assert error is not None, outcome.describe()
    assert error["type"] == "WorkerCrashed", error
    assert outcome.step("close pipes")["seconds"] < 10
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_an_event_flood_neither_stalls_the_host_nor_fills_its_memory(scene, steps) -> None:
    ext = "hostile.misc"

    outcome = scene.run(
        [
            {"op": "subscribe", "ext": ext, "label": "subscribe"},
            {"op": "background", "ext": ext, "method": "flood", "args": [5.0], "label": "flood"},
            {"op": "latency", "count": 20, "label": "canary during the flood"},
            {"op": "join", "of": "flood", "seconds": 30, "label": "flood done"},
            {"op": "events", "label": "events"},
            {"op": "self", "label": "host after"},
        ],
        setup=steps.start(ext),
        attackers=[ext],
        call_budget=30.0,
    )

    assert outcome.value("canary during the flood")["max"] < 2.0, outcome.describe()
    assert outcome.value("host after")["maxrss_mib"] < HOST_MEMORY_MIB, outcome.describe()
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()
