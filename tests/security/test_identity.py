"""Attacks on identity: taking another extension's config, grant or trust by looking like it."""

from __future__ import annotations

import json
import os

OWNER, OTHER = "acme-x.y", "acme.x-y"
VARIABLE = "SYMPHONY_ACME_X_Y__API_KEY"


def test_an_extension_whose_id_maps_to_the_same_variables_does_not_get_anothers_config(scene, steps) -> None:
    key = f"sk-{os.urandom(12).hex()}"

    outcome = scene.run(
        [
            {"op": "start", "ext": OTHER, "label": "start"},
            steps.call(OTHER, "api_key", label="its api key"),
            steps.call(OTHER, "seen", label="what it saw"),
        ],
        setup=[{"op": "grant", "ext": OTHER, "label": "grant"}],
        attackers=[OWNER, OTHER],
        env={VARIABLE: key},
    )

    started = outcome.step("start")
    if started["ok"]:
        assert outcome.value("its api key") != key, f"{OTHER} received the key meant for {OWNER}"
    else:
        error = started["error"]
        assert error["symphony"], error
        assert OWNER in error["message"], f"the refusal does not name {OWNER}: {error['message']}"
        assert OTHER in error["message"], f"the refusal does not name {OTHER}: {error['message']}"
    assert key not in outcome.raw, f"the key meant for {OWNER} reached {OTHER}\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_symphony_config_show_neither_hands_the_key_over_nor_lets_the_config_model_read_secrets(
    scene,
) -> None:
    key = f"sk-{os.urandom(12).hex()}"

    shown = scene.symphony("config", "show", OTHER, "--json", env={VARIABLE: key})

    said = shown.stdout + shown.stderr
    assert key not in said, f"`symphony config show {OTHER}` printed the key meant for {OWNER}:\n{said}"
    assert scene.secret_text not in said, f"the config model read the secret while being imported:\n{said}"
    if shown.returncode == 0:
        config = json.loads(shown.stdout)
        assert config["sources"].get("api_key") in (None, "default"), config
    else:
        assert OWNER in said, f"the refusal does not name {OWNER}:\n{said}"
        assert OTHER in said, f"the refusal does not name {OTHER}:\n{said}"


def test_a_second_distribution_with_a_granted_extensions_id_and_version_does_not_run_on_its_grant(
    scene, steps, arena
) -> None:
    granted = scene.run(
        [{"op": "inspect", "ext": "twin.app", "label": "inspect"}, *steps.start("twin.app")],
        attackers=["twin.app"],
    )
    assert granted.value("inspect")["distribution"] == "twin-legit", granted.describe()
    assert granted.value("start twin.app")["distribution"] == "twin-legit", granted.describe()

    outcome = scene.run(
        [
            {"op": "discover", "label": "discover"},
            {"op": "start", "ext": "twin.app", "label": "start"},
            steps.call("twin.app", "who", label="who"),
        ],
        attackers=["twin.app"],
        path_first=[str(arena.impostors)],
    )

    twins = [info for info in outcome.value("discover") if info["id"] == "twin.app"]
    assert {info["distribution"] for info in twins} == {"twin-legit", "twin-impostor"}, twins
    who = outcome.step("who")
    assert not (who["ok"] and who["value"] == "twin-impostor"), (
        f"the impostor runs with twin-legit's grant\n{outcome.describe()}"
    )
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_a_distribution_claiming_a_trusted_publishers_prefix_is_not_trusted(scene, steps) -> None:
    ext = "acme.helper"
    policy = scene.home / "policy.toml"
    policy.write_text('[[trust]]\npublisher = "acme"\n', encoding="utf-8")

    outcome = scene.run(
        [
            {"op": "start", "ext": ext, "label": "start"},
            steps.call(ext, "where_am_i", label="where"),
            steps.call(ext, "read_native", str(scene.secret), label="read natively"),
        ],
        attackers=[ext],
        isolation="auto",
        canary=False,  # a policy the host refuses stops every extension, the canary too
    )

    started = outcome.step("start")
    if not started["ok"]:
        error = started["error"]
        assert error["type"] == "ConfigError", f"refused, but not as a policy that cannot hold: {error}"
        assert str(policy) in error["message"], error
    else:
        assert started["value"]["tier"] == "isolated", (
            f"mallory-tools runs in the host's process as a trusted 'acme' extension\n{outcome.describe()}"
        )
        assert outcome.value("where") != outcome.report["pid"]
    assert scene.secret_text not in outcome.raw, f"it read the secret\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()
