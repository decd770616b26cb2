"""An extension's config resolves from defaults, its file, the environment and host overrides, and keeps
its secrets out of every text a person or a log can see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field, SecretStr

from symphony_core._model._errors import ConfigError
from symphony_core._store._config import (
    Config,
    Resolved,
    Source,
    config_file,
    config_schema,
    env_prefix,
    load_config,
    parse_value,
    public_dump,
    set_value,
)
from symphony_core._store._home import Home
from symphony_core._store._state import HostState

ID = "acme.digits"
PREFIX = "SYMPHONY_ACME_DIGITS__"
SECRET = "sk-live-7f3a9c1e55d2"


class Batch(Config):
    max_size: int = Field(32, ge=1, description="Most inputs in one batch.")
    timeout_s: float = Field(0.5, description="Longest wait to fill a batch.")


class DigitsConfig(Config):
    model_path: str = Field(description="The ONNX model file.")
    threshold: float = Field(0.5, ge=0, le=1, description="Lowest score reported.")
    labels: list[str] = Field(["zero", "one"], description="Class names.")
    batch: Batch = Field(default_factory=Batch, description="How inputs are grouped.")
    api_key: Annotated[SecretStr, Field(min_length=8)] | None = Field(None, description="The service key.")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def write_file(home: Home, text: str) -> Path:
    path = config_file(home, ID)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(home: Home, environ: dict[str, str] | None = None, **overrides: object) -> Resolved[DigitsConfig]:
    return load_config(DigitsConfig, ID, home=home, overrides=overrides, environ=environ or {})


def problem(home: Home, environ: dict[str, str] | None = None, **overrides: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load(home, environ, **overrides)
    return str(caught.value)


def test_the_environment_prefix_is_the_id_uppercased_with_other_characters_as_underscores() -> None:
    assert env_prefix("acme.digits") == PREFIX
    assert env_prefix("acme-labs.ocr_v2") == "SYMPHONY_ACME_LABS_OCR_V2__"


def test_values_nobody_set_come_from_the_model_defaults(home: Home) -> None:
    resolved = load(home, model_path="m.onnx")

    assert resolved.config == DigitsConfig(model_path="m.onnx")
    assert resolved.sources == {
        "api_key": Source("default"),
        "batch.max_size": Source("default"),
        "batch.timeout_s": Source("default"),
        "labels": Source("default"),
        "model_path": Source("override", "model_path"),
        "threshold": Source("default"),
    }


def test_each_layer_overrides_the_one_below_and_reports_where_each_value_came_from(home: Home) -> None:
    path = write_file(home, 'model_path = "file.onnx"\nthreshold = 0.1\nlabels = ["a"]\n')
    environ = {f"{PREFIX}THRESHOLD": "0.2", f"{PREFIX}LABELS": '["b", "c"]', "SYMPHONY_OTHER__THRESHOLD": "9"}

    resolved = load(home, environ, labels=["d"])

    assert (resolved.config.model_path, resolved.config.threshold, resolved.config.labels) == (
        "file.onnx",
        0.2,
        ["d"],
    )
    assert str(resolved.sources["model_path"]) == f"file {path} key model_path"
    assert str(resolved.sources["threshold"]) == f"env {PREFIX}THRESHOLD"
    assert str(resolved.sources["labels"]) == "override labels"
    assert resolved.as_json()["sources"]["batch.max_size"] == "default"


def test_nested_tables_merge_layer_over_layer_while_lists_replace(home: Home) -> None:
    path = write_file(
        home, 'model_path = "m.onnx"\nlabels = ["a", "b", "c"]\n[batch]\nmax_size = 8\ntimeout_s = 2.0\n'
    )

    resolved = load(home, {f"{PREFIX}BATCH__MAX_SIZE": "16"}, labels=["z"], batch={"timeout_s": 3.5})

    assert resolved.config.batch == Batch(max_size=16, timeout_s=3.5)
    assert resolved.config.labels == ["z"]
    assert str(resolved.sources["batch.max_size"]) == f"env {PREFIX}BATCH__MAX_SIZE"
    assert str(resolved.sources["batch.timeout_s"]) == "override batch"
    assert load(home, None, **{"batch.max_size": 4}).sources["batch.timeout_s"] == Source(
        "file", f"{path} key batch.timeout_s"
    )


def test_text_values_keep_their_text_unless_they_are_json_structures_or_null(home: Home) -> None:
    assert parse_value('{"max_size": 2}') == {"max_size": 2}
    assert parse_value("null") is None
    assert parse_value("1.10") == "1.10"
    assert parse_value("not json") == "not json"

    resolved = load(
        home, {f"{PREFIX}MODEL_PATH": "007", f"{PREFIX}THRESHOLD": "1", f"{PREFIX}API_KEY": "12345678"}
    )

    assert (resolved.config.model_path, resolved.config.threshold) == ("007", 1.0)
    assert resolved.config.api_key == SecretStr("12345678")


def test_an_invalid_value_from_the_file_names_the_file_and_key(home: Home) -> None:
    path = write_file(home, 'model_path = "m.onnx"\n[batch]\nmax_size = 0\n')

    message = problem(home)

    assert message.startswith(f"{ID}: invalid config")
    assert (
        f"batch.max_size: Input should be greater than or equal to 1, got 0 (from file {path} key batch.max_size)"
        in message
    )


def test_an_invalid_value_from_the_environment_names_the_variable(home: Home) -> None:
    message = problem(home, {f"{PREFIX}THRESHOLD": "3"}, model_path="m.onnx")

    assert (
        f"threshold: Input should be less than or equal to 1, got '3' (from env {PREFIX}THRESHOLD)" in message
    )


def test_an_invalid_value_from_an_override_names_the_override_key(home: Home) -> None:
    message = problem(home, model_path="m.onnx", labels="zero")

    assert "labels: Input should be a valid list, got 'zero' (from override labels)" in message


def test_a_missing_required_value_is_reported_as_set_nowhere_with_the_ways_to_set_it(home: Home) -> None:
    message = problem(home)

    assert "model_path: Field required (set nowhere)" in message
    assert str(config_file(home, ID)) in message
    assert f"{PREFIX}*" in message
    assert f"symphony config set {ID} KEY VALUE" in message


def test_bad_toml_names_the_file(home: Home) -> None:
    path = write_file(home, 'model_path = "m.onnx"\nthreshold = = 0.3\n')

    message = problem(home)

    assert f"cannot read config file {path}" in message
    assert "line 2" in message


@pytest.mark.parametrize(
    ("layer", "where"),
    [
        ("file", "from file {path} key batch.max_sise"),
        ("env", f"from env {PREFIX}BATCH__MAX_SISE"),
        ("override", "from override batch.max_sise"),
    ],
)
def test_an_unknown_key_is_an_error_naming_its_source(home: Home, layer: str, where: str) -> None:
    path = write_file(
        home, 'model_path = "m.onnx"\n' + ("[batch]\nmax_sise = 4\n" if layer == "file" else "")
    )
    environ = {f"{PREFIX}BATCH__MAX_SISE": "4"} if layer == "env" else {}
    overrides = {"batch.max_sise": 4} if layer == "override" else {}

    message = problem(home, environ, **overrides)

    assert f"batch.max_sise: Extra inputs are not permitted ({where.format(path=path)})" in message


def test_secrets_never_show_in_dumps_the_schema_errors_or_the_audit_log(home: Home, tmp_path: Path) -> None:
    write_file(home, 'model_path = "m.onnx"\n')
    by_env = load(home, {f"{PREFIX}API_KEY": SECRET})
    with HostState(tmp_path / "state.sqlite") as state:
        by_override = set_value(
            DigitsConfig, ID, "api_key", SECRET, home=home, state=state, actor="ops", environ={}
        )
        short = SECRET[:6]
        with pytest.raises(ConfigError) as refused:
            set_value(DigitsConfig, ID, "api_key", short, home=home, state=state, actor="ops", environ={})
        audit = json.dumps([[record.event, record.detail] for record in state.audit_log(ID)])
    error = problem(home, {f"{PREFIX}API_KEY": short, f"{PREFIX}API_TOKEN": SECRET})

    assert by_override.config.api_key == SecretStr(SECRET)
    assert str(by_env.sources["api_key"]) == f"env {PREFIX}API_KEY"
    assert public_dump(by_override.config)["api_key"] == "**********"
    assert public_dump(load(home).config)["api_key"] is None
    assert "api_key: Value should have at least 8 items after validation, not 6 (from env" in error
    assert "(from override api_key)" in str(refused.value)
    texts = [
        json.dumps(by_env.as_json()),
        json.dumps(by_override.as_json()),
        audit,
        error,
        str(refused.value),
    ]
    texts.append(repr(by_env))
    texts.append(json.dumps(config_schema(DigitsConfig)))
    for text in texts:
        assert SECRET not in text
        assert short not in text


def test_the_schema_documents_fields_and_marks_secrets_as_write_only_passwords() -> None:
    schema = config_schema(DigitsConfig)

    assert schema["required"] == ["model_path"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["threshold"]["description"] == "Lowest score reported."
    secret = next(
        option for option in schema["properties"]["api_key"]["anyOf"] if option.get("type") == "string"
    )
    assert secret["writeOnly"] is True
    assert secret["format"] == "password"


def test_setting_an_invalid_value_raises_and_leaves_the_stored_config_unchanged(
    home: Home, tmp_path: Path
) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        set_value(DigitsConfig, ID, "model_path", "m.onnx", home=home, state=state, actor="ops", environ={})
        before = (state.config_overrides(ID), state.audit_log(ID))

        with pytest.raises(
            ConfigError,
            match=r"threshold: Input should be less than or equal to 1, got '7' \(from override threshold\)",
        ):
            set_value(DigitsConfig, ID, "threshold", "7", home=home, state=state, actor="ops", environ={})

        assert (state.config_overrides(ID), state.audit_log(ID)) == before
        assert load(home, **state.config_overrides(ID)).config.threshold == 0.5


def test_setting_a_valid_value_persists_and_survives_reopening_the_state(home: Home, tmp_path: Path) -> None:
    with HostState(tmp_path / "state.sqlite") as state:
        set_value(DigitsConfig, ID, "model_path", "m.onnx", home=home, state=state, actor="ops", environ={})
        resolved = set_value(
            DigitsConfig, ID, "batch.max_size", "64", home=home, state=state, actor="ops", environ={}
        )
    assert resolved.config.batch.max_size == 64

    with HostState(tmp_path / "state.sqlite") as state:
        reopened = load(home, **state.config_overrides(ID))
        events = [(record.event, record.actor, record.detail) for record in state.audit_log(ID)]

    assert reopened.config == DigitsConfig(model_path="m.onnx", batch=Batch(max_size=64))
    assert str(reopened.sources["batch.max_size"]) == "override batch.max_size"
    assert events == [
        ("config_set", "ops", {"key": "model_path"}),
        ("config_set", "ops", {"key": "batch.max_size"}),
    ]
