"""Config editors built from real config models' JSON Schemas, saved through a real host."""

from __future__ import annotations

import enum
from typing import Any, Literal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import Field, SecretStr

from symphony_core import Host
from symphony_motifs import Config, ConfigEditor, MotifError, build_form


class Limits(Config):
    low: int = Field(default=0, ge=0)
    high: int = Field(default=10, lt=100)


class Proxy(Config):
    url: str = "http://proxy.local:3128"
    limits: Limits = Limits()


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Everything(Config):
    """Settings of an extension with every kind of field."""

    name: str = Field(min_length=2, max_length=20, pattern="^[a-z]+$", description="Lowercase name.")
    ratio: float = Field(default=0.5, gt=0, le=1)
    retries: int | None = Field(default=None, ge=0, multiple_of=1)
    mode: Literal["fast", "safe"] = "safe"
    level: Literal[3] = 3
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    sizes: list[int] = Field(default_factory=lambda: [1, 2])
    mapping: dict[str, int] = Field(default_factory=dict)
    password: SecretStr
    maybe_secret: SecretStr | None = None
    proxy: Proxy = Proxy()
    optional_proxy: Proxy | None = None
    color: Color = Color.GREEN


def test_every_kind_of_field_gets_its_widget_and_constraints() -> None:
    form = build_form(Everything.model_json_schema())
    fields = {field.key: field for field in form.fields}
    assert form.title == "Everything"
    assert form.description == "Settings of an extension with every kind of field."
    name = fields["name"]
    assert (name.widget, name.required, name.min_length, name.max_length, name.pattern) == (
        "text",
        True,
        2,
        20,
        "^[a-z]+$",
    )
    assert name.description == "Lowercase name."
    assert (fields["ratio"].widget, fields["ratio"].exclusive_minimum, fields["ratio"].maximum) == (
        "number",
        0,
        1,
    )
    retries = fields["retries"]
    assert (retries.widget, retries.nullable, retries.minimum, retries.default) == ("integer", True, 0, None)
    assert (fields["mode"].widget, fields["mode"].options, fields["mode"].default) == (
        "select",
        ("fast", "safe"),
        "safe",
    )
    assert (fields["level"].widget, fields["level"].options) == ("select", (3,))
    assert (fields["color"].widget, fields["color"].options, fields["color"].default) == (
        "select",
        ("red", "green"),
        "green",
    )
    assert (fields["enabled"].widget, fields["enabled"].default) == ("checkbox", True)
    assert fields["tags"].widget == "list"
    assert fields["tags"].item is not None
    assert fields["tags"].item.widget == "text"
    assert fields["sizes"].item is not None
    assert fields["sizes"].item.widget == "integer"
    assert fields["mapping"].widget == "json"
    assert (fields["password"].widget, fields["password"].required) == ("secret", True)
    assert (fields["maybe_secret"].widget, fields["maybe_secret"].nullable) == ("secret", True)
    proxy = fields["proxy"]
    assert proxy.widget == "group"
    assert [child.key for child in proxy.fields] == ["proxy.url", "proxy.limits"]
    limits = proxy.fields[1]
    assert [(child.key, child.widget) for child in limits.fields] == [
        ("proxy.limits.low", "integer"),
        ("proxy.limits.high", "integer"),
    ]
    assert limits.fields[1].exclusive_maximum == 100
    assert (fields["optional_proxy"].widget, fields["optional_proxy"].nullable) == ("group", True)
    assert "proxy.limits.high" in form.field_keys()
    assert "proxy" not in form.field_keys()


def test_a_secret_never_carries_a_default_to_the_page() -> None:
    class Keyed(Config):
        key: SecretStr = SecretStr("hunter2")

    data = build_form(Keyed.model_json_schema()).as_json()
    assert data["fields"][0]["widget"] == "secret"
    assert "default" not in data["fields"][0]
    assert "hunter2" not in str(data)


def test_a_recursive_model_falls_back_to_json_instead_of_looping() -> None:
    class Node(Config):
        label: str = "root"
        children: list[Node] = Field(default_factory=list)
        parent: Node | None = None

    class Tree(Config):
        top: Node = Node()

    Node.model_rebuild()
    fields = {field.key: field for field in build_form(Node.model_json_schema()).fields}
    assert (fields["children"].widget, fields["parent"].widget) == ("json", "json")
    top = build_form(Tree.model_json_schema()).fields[0]
    assert top.widget == "group"
    assert {child.key: child.widget for child in top.fields} == {
        "top.label": "text",
        "top.children": "json",
        "top.parent": "json",
    }


def test_the_editor_shows_values_and_their_layers_with_secrets_masked(
    host: Host, tiles: str, monkeypatch: object
) -> None:
    host.set_config(tiles, "token", "s3cret-value")
    host.set_config(tiles, "columns", "4")
    state = ConfigEditor(host, tiles).state()
    assert state["values"]["columns"] == 4
    assert state["values"]["token"] == "**********"
    assert "s3cret-value" not in str(state)
    assert state["sources"]["columns"] == "override columns"
    assert state["sources"]["feed.timeout"] == "default"
    assert state["errors"] == {}
    assert [field["key"] for field in state["form"]["fields"]][:3] == ["title", "columns", "theme"]


def test_a_form_is_saved_whole_or_not_at_all_with_errors_by_field(host: Host, tiles: str) -> None:
    editor = ConfigEditor(host, tiles)
    host.set_config(tiles, "title", "Set before")
    result = editor.save({"columns": 40, "feed.timeout": 0, "theme": "dark", "title": "Big tiles", "nope": 1})
    assert (result.saved, result.kept) == ([], [])
    assert set(result.errors) == {"columns", "feed.timeout", "nope"}
    assert "less than or equal to 12" in result.errors["columns"]
    assert "greater than 0" in result.errors["feed.timeout"]
    assert result.errors["nope"] == "not a field of this config"
    resolved = host.config(tiles)
    assert resolved is not None
    # Nothing of the refused save stays: the valid values were undone, the earlier override put back.
    assert (resolved.config.columns, resolved.config.theme, resolved.config.title) == (
        3,
        "light",
        "Set before",
    )
    assert set(host.state.config_overrides(tiles)) == {"title"}
    result = editor.save({"columns": 12, "tags": ["a", "b"], "animate": False, "feed.host": "tiles.local"})
    assert (result.saved, result.errors) == (["columns", "tags", "animate", "feed.host"], {})
    resolved = host.config(tiles)
    assert resolved is not None
    assert resolved.config.columns == 12
    assert resolved.config.tags == ["a", "b"]
    assert resolved.config.animate is False
    assert resolved.config.feed.host == "tiles.local"
    assert resolved.config.feed.timeout == 5.0


def test_a_value_is_reset_to_its_default_in_the_same_save(host: Host, tiles: str) -> None:
    editor = ConfigEditor(host, tiles)
    assert editor.save({"columns": 5, "theme": "dark"}).saved == ["columns", "theme"]
    result = editor.save({"title": "Other"}, reset=["columns"])
    assert (result.saved, result.reset, result.errors) == (["title"], ["columns"], {})
    state = editor.state()
    assert (state["values"]["columns"], state["sources"]["columns"]) == (3, "default")
    assert state["values"]["theme"] == "dark"


def test_titles_and_descriptions_come_from_the_schema_rendered_safely() -> None:
    form = build_form(
        {
            "title": "Weather",
            "description": "Set *where* it looks. <script>alert(1)</script>",
            "properties": {
                "city": {
                    "type": "string",
                    "title": "City name",
                    "description": "A **city**, e.g. `Oslo` <b>x</b>",
                }
            },
        }
    ).as_json()
    assert (
        form["description_html"]
        == "<p>Set <em>where</em> it looks. &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    )
    (city,) = form["fields"]
    assert city["label"] == "City name"
    assert city["description_html"] == "A <strong>city</strong>, e.g. <code>Oslo</code> &lt;b&gt;x&lt;/b&gt;"


def test_saving_respects_the_layers_below_the_override(host: Host, tiles: str, tmp_path, monkeypatch) -> None:
    config_file = host.home.config_dir / "acme.tiles.toml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text('title = "From the file"\n[feed]\ntimeout = 9.5\n', encoding="utf-8")
    monkeypatch.setenv("SYMPHONY_ACME_TILES__THEME", "dark")
    editor = ConfigEditor(host, tiles)
    state = editor.state()
    assert state["values"]["title"] == "From the file"
    assert state["values"]["theme"] == "dark"
    assert state["sources"]["title"].startswith("file ")
    assert state["sources"]["theme"] == "env SYMPHONY_ACME_TILES__THEME"
    assert editor.save({"feed.host": "other.example"}).saved == ["feed.host"]
    resolved = host.config(tiles)
    assert resolved is not None
    assert resolved.config.feed.timeout == 9.5
    assert resolved.config.feed.host == "other.example"
    assert resolved.config.title == "From the file"


def test_an_invalid_config_in_force_is_shown_by_field(host: Host, tiles: str, monkeypatch) -> None:
    monkeypatch.setenv("SYMPHONY_ACME_TILES__COLUMNS", "zero")
    state = ConfigEditor(host, tiles).state()
    assert state["values"] is None
    assert "valid integer" in state["errors"]["columns"]


# Fuzzed: what a page posts to the editor, and the schemas workers answer with (an isolated extension's
# config schema comes from its worker). ``--fuzz`` runs 100 times as many examples.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
form_keys = st.sampled_from(
    ["columns", "feed.timeout", "feed.host", "theme", "title", "tags", "animate", "nope", ""]
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(changes=st.dictionaries(form_keys | st.text(max_size=12), json_values, max_size=4))
def test_whatever_a_page_posts_is_saved_valid_or_refused_by_field(
    host: Host, tiles: str, changes: dict[str, Any]
) -> None:
    editor = ConfigEditor(host, tiles)
    before = host.state.config_overrides(tiles)

    result = editor.save(changes)

    stored = host.state.config_overrides(tiles)
    if result.errors:  # all or nothing
        assert result.saved == []
        assert set(result.errors) <= set(changes)
        assert set(stored) == set(before)
    else:
        assert set(result.saved) == set(changes)
    editor.state()  # the editor still shows the config in force
    host.unset_config(tiles)


schema_nodes = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(
                ["string", "integer", "number", "boolean", "array", "object", "null", "x"]
            )
            | json_values,
            "title": json_values,
            "default": json_values,
            "enum": json_values,
            "minimum": json_values,
            "format": st.sampled_from(["password", "uri"]) | json_values,
            "$ref": st.sampled_from(["#/$defs/A", "#/$defs/B", "#/nowhere", "http://x/y"]) | json_values,
        },
    ),
    lambda inner: st.fixed_dictionaries(
        {},
        optional={
            "properties": st.dictionaries(st.text(max_size=8), inner, max_size=4) | json_values,
            "items": inner | json_values,
            "anyOf": st.lists(inner, max_size=3) | json_values,
            "allOf": st.lists(inner, max_size=3),
            "required": st.lists(st.text(max_size=8), max_size=3) | json_values,
            "$defs": st.dictionaries(st.sampled_from(["A", "B"]), inner, max_size=2),
            "type": st.just("object"),
        },
    ),
    max_leaves=12,
)


@given(schema=schema_nodes)
@example(schema={"properties": None})  # each of these raised a TypeError or AttributeError before
@example(schema={"properties": [False]})
@example(schema={"properties": "0"})
@example(schema={"properties": [True]})
@example(schema={"required": None})
def test_a_config_schema_of_any_shape_gives_a_form_or_a_motif_error(schema: dict[str, Any]) -> None:
    try:
        form = build_form(schema)
    except MotifError:
        return
    form.as_json()
    form.field_keys()
