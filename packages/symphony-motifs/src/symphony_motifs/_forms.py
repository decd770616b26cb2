"""Config editors generated from any extension's config JSON Schema, saved through the host.

`build_form` turns the schema pydantic writes for a config model into a tree of `FormField`s (strings,
numbers with their bounds, enums, booleans, nested sections, lists, masked secrets) that a page renders.
`ConfigEditor` pairs it with the extension's current values and where each came from, and saves changes
as host overrides (the top config layer) through ``Host.set_config``: the extension's real pydantic
model validates every change, and its errors come back by field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from symphony_core import ConfigError, Host

from ._errors import MotifError
from ._markdown import render_markdown, visible

WIDGETS = ("text", "secret", "integer", "number", "checkbox", "select", "list", "json", "group")
"""How a field is edited: ``group`` holds nested ``fields``; ``list`` repeats its ``item``; ``json`` is the
fallback for shapes a form cannot show field by field (maps, unions, lists of sections)."""


@dataclass(frozen=True)
class FormField:
    """One editable field of a config form."""

    key: str
    label: str
    widget: str
    description: str | None = None
    required: bool = False
    nullable: bool = False
    default: Any = None
    has_default: bool = False
    options: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    multiple_of: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    item: FormField | None = None
    fields: tuple[FormField, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The field as JSON-ready data, leaving out what does not apply to it."""
        data: dict[str, Any] = {"key": self.key, "label": visible(self.label), "widget": self.widget}
        if self.description:
            data["description_html"] = render_markdown(self.description, inline=True)
        data["required"] = self.required
        data["nullable"] = self.nullable
        for name in (
            "description",
            "minimum",
            "maximum",
            "exclusive_minimum",
            "exclusive_maximum",
            "multiple_of",
            "min_length",
            "max_length",
            "pattern",
        ):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.has_default and self.widget != "secret":
            data["default"] = self.default
        if self.options:
            data["options"] = list(self.options)
        if self.item is not None:
            data["item"] = self.item.as_json()
        if self.fields:
            data["fields"] = [child.as_json() for child in self.fields]
        return data


@dataclass(frozen=True)
class ConfigForm:
    """A whole config form: its title and top-level fields."""

    title: str
    fields: tuple[FormField, ...]
    description: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The form as JSON-ready data for a page."""
        return {
            "title": visible(self.title),
            "description": self.description,
            "description_html": None if not self.description else render_markdown(self.description),
            "fields": [child.as_json() for child in self.fields],
        }

    def field_keys(self) -> list[str]:
        """Every editable field's dotted key, nested sections expanded."""
        found: list[str] = []

        def walk(fields: tuple[FormField, ...]) -> None:
            for child in fields:
                if child.widget == "group":
                    walk(child.fields)
                else:
                    found.append(child.key)

        walk(self.fields)
        return found


def build_form(schema: Mapping[str, Any]) -> ConfigForm:
    """Build the form for a config model's JSON Schema (as ``Host.config_schema`` returns it).

    An isolated extension's schema comes from its worker: one that is not shaped as pydantic makes
    them raises `MotifError` saying so, never an error from inside this function.
    """
    try:
        return _build_form(schema)
    except Exception as exc:  # noqa: BLE001 - any schema that breaks the walk is the schema's fault
        raise MotifError(
            f"its config schema cannot be shown as a form: {type(exc).__name__}: {str(exc)[:200]}",
            hint="the schema is not one a pydantic Config model makes: fix the model, or report it to "
            "the extension's authors",
        ) from None


def _build_form(schema: Mapping[str, Any]) -> ConfigForm:
    if not isinstance(schema, Mapping):
        raise TypeError(f"a schema is an object, not {type(schema).__name__}")
    definitions = schema.get("$defs", {})
    root = _resolve(schema, definitions)
    reference = _reference(schema)
    seen = (reference,) if reference is not None else ()
    fields = _object_fields(root, definitions, prefix="", seen=seen)
    return ConfigForm(str(root.get("title") or "Config"), fields, root.get("description"))


def _resolve(node: Mapping[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (and a lone ``allOf`` wrapping one) into ``$defs``, keeping the outer keywords."""
    merged = dict(node)
    for _ in range(32):  # a chain of references longer than this is a malformed schema
        reference = merged.pop("$ref", None)
        if reference is None and isinstance(merged.get("allOf"), list) and len(merged["allOf"]) == 1:
            reference = merged.pop("allOf")[0].get("$ref")
        if not isinstance(reference, str):
            break
        target = definitions.get(reference.rsplit("/", 1)[-1], {})
        merged = {**target, **merged}
    return merged


def _reference(node: Mapping[str, Any]) -> str | None:
    """The definition a node stands for: its ``$ref``, or the one of a lone ``allOf`` (older pydantic)."""
    reference = node.get("$ref")
    if reference is None and isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        reference = node["allOf"][0].get("$ref")
    return reference if isinstance(reference, str) else None


def _object_fields(
    node: Mapping[str, Any], definitions: Mapping[str, Any], *, prefix: str, seen: tuple[str, ...]
) -> tuple[FormField, ...]:
    required = set(node.get("required", ()))
    properties = node.get("properties", {})
    return tuple(
        _field(
            f"{prefix}{name}",
            str(name),
            properties[name],
            definitions,
            required=name in required,
            seen=seen,
        )
        for name in properties
    )


def _field(
    key: str,
    name: str,
    raw: Mapping[str, Any],
    definitions: Mapping[str, Any],
    *,
    required: bool,
    seen: tuple[str, ...],
) -> FormField:
    reference = _reference(raw)
    node = _resolve(raw, definitions)
    nullable = False
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        others = [variant for variant in variants if variant.get("type") != "null"]
        nullable = len(others) < len(variants)
        if len(others) == 1:
            reference = _reference(others[0]) or reference
            outer = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            node = {**_resolve(others[0], definitions), **outer}
    common: dict[str, Any] = {
        "key": key,
        "label": str(node.get("title") or name.replace("_", " ").capitalize()),
        "description": node.get("description"),
        "required": required,
        "nullable": nullable,
        "default": node.get("default"),
        "has_default": "default" in node,
    }
    kind = node.get("type")
    if "enum" in node or "const" in node:
        options = tuple(node["enum"]) if "enum" in node else (node["const"],)
        return FormField(widget="select", options=options, **common)
    if kind == "boolean":
        return FormField(widget="checkbox", **common)
    if kind in ("integer", "number"):
        return FormField(
            widget=str(kind),
            minimum=node.get("minimum"),
            maximum=node.get("maximum"),
            exclusive_minimum=node.get("exclusiveMinimum"),
            exclusive_maximum=node.get("exclusiveMaximum"),
            multiple_of=node.get("multipleOf"),
            **common,
        )
    if kind == "string":
        secret = node.get("format") == "password" or node.get("writeOnly") is True
        return FormField(
            widget="secret" if secret else "text",
            min_length=node.get("minLength"),
            max_length=node.get("maxLength"),
            pattern=node.get("pattern"),
            **common,
        )
    if kind == "array":
        item_node = node.get("items")
        item = None
        if isinstance(item_node, Mapping):
            item = _field(f"{key}[]", name, item_node, definitions, required=True, seen=seen)
        if item is not None and item.widget in ("text", "integer", "number", "select", "checkbox"):
            return FormField(
                widget="list",
                item=item,
                min_length=node.get("minItems"),
                max_length=node.get("maxItems"),
                **common,
            )
        return FormField(widget="json", **common)
    if kind == "object" and "properties" in node:
        if reference is not None and reference in seen:  # a recursive model: edit the rest as JSON
            return FormField(widget="json", **common)
        nested = seen + ((reference,) if reference is not None else ())
        return FormField(
            widget="group", fields=_object_fields(node, definitions, prefix=f"{key}.", seen=nested), **common
        )
    return FormField(widget="json", **common)


@dataclass
class SaveResult:
    """What saving a form did: the keys stored (or reset), and one message per key that was refused.

    A form is saved whole: when any key is refused, the ones this save had stored are undone, and
    ``saved`` is empty; ``kept`` names any it could not undo (a secret set here before: its earlier value
    cannot be read back)."""

    saved: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    reset: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"saved": self.saved, "errors": self.errors, "reset": self.reset, "kept": self.kept}


class ConfigEditor:
    """Edit one extension's config through the host: its form, its current values, and saving."""

    def __init__(self, host: Host, extension: str) -> None:
        self.host = host
        self.extension = extension

    def form(self) -> ConfigForm:
        """The extension's config form; `MotifError` when it has no config."""
        schema = self.host.config_schema(self.extension)
        if schema is None:
            raise MotifError(
                "has no config to edit",
                extension=self.extension,
                hint="its manifest names no `config` model",
            )
        try:
            return build_form(schema)
        except MotifError as exc:
            raise MotifError(exc.message, extension=self.extension, hint=exc.hint) from None

    def state(self) -> dict[str, Any]:
        """The form, the values in force (secrets masked), where each came from, and any current error."""
        form = self.form()
        values: dict[str, Any] | None = None
        sources: dict[str, str] = {}
        errors: dict[str, str] = {}
        try:
            resolved = self.host.config(self.extension)
        except ConfigError as exc:  # the config in force is invalid: show why, by field, to fix it here
            errors = field_errors(exc, form.field_keys())
        else:
            if resolved is not None:
                document = resolved.as_json()
                values, sources = document["config"], document["sources"]
        return {
            "extension": self.extension,
            "form": form.as_json(),
            "values": values,
            "sources": sources,
            "errors": errors,
        }

    def save(self, changes: Mapping[str, Any], *, reset: Iterable[str] = ()) -> SaveResult:
        """Store the changed values as host overrides and reset the ``reset`` keys to the layers below
        (their defaults, unless a file or variable sets them), all or nothing.

        Each key is validated by the extension's own model with every layer applied; a refused value's
        message is returned under its key (or ``""`` for the config as a whole), and then nothing of this
        save stays stored.
        """
        form_keys = self.form().field_keys()
        result = SaveResult()
        before = self._overrides()
        done: list[str] = []
        for key in reset:
            if key not in form_keys:
                result.errors[key] = "not a field of this config"
            elif key in before:
                self.host.unset_config(self.extension, key, actor="marketplace")
                done.append(key)
        for key, value in changes.items():
            if key not in form_keys:
                result.errors[key] = "not a field of this config"
                continue
            try:
                self.host.set_config(self.extension, key, _as_text(value), actor="marketplace")
            except ConfigError as exc:
                found = field_errors(exc, form_keys)
                # The value was just typed here: where it came from goes without saying.
                mine = found.pop(key, "").replace(f" (from override {key})", "")
                result.errors[key] = mine or "; ".join(found.values()) or exc.message
            else:
                done.append(key)
        if result.errors:
            result.kept = self._undo(done, before)
            return result
        result.reset = [key for key in reset if key in done]
        result.saved = [key for key in changes if key in done]
        return result

    def _overrides(self) -> dict[str, Any]:
        """The values set here (host overrides) by key, as JSON (secrets masked)."""
        try:
            resolved = self.host.config(self.extension)
        except ConfigError:
            return {}
        if resolved is None:
            return {}
        document = resolved.as_json()
        return {
            key: _value_at(document["config"], key)
            for key, source in document["sources"].items()
            if source.startswith("override")
        }

    def _undo(self, keys: list[str], before: Mapping[str, Any]) -> list[str]:
        """Put the ``keys`` this save touched back as they were; the keys that could not be."""
        kept = []
        for key in reversed(keys):
            if key not in before:
                self.host.unset_config(self.extension, key, actor="marketplace")
            elif before[key] == "**********":  # a secret set here before cannot be read back
                kept.append(key)
            else:
                try:
                    self.host.set_config(self.extension, key, _as_text(before[key]), actor="marketplace")
                except ConfigError:
                    kept.append(key)
        return sorted(kept)


def _value_at(values: Any, key: str) -> Any:
    for part in key.split("."):
        values = values.get(part) if isinstance(values, Mapping) else None
    return values


def field_errors(error: ConfigError, keys: list[str]) -> dict[str, str]:
    """A `ConfigError`'s problems by field key (the nearest form field for list items; ``""`` for the rest)."""
    errors: dict[str, str] = {}
    for problem in error.problems:
        location = problem.location
        key = location if location in keys else _nearest(location, keys)
        errors[key] = f"{errors[key]}; {problem.message}" if key in errors else problem.message
    if not errors:
        errors[""] = error.message
    return errors


def _nearest(location: str, keys: list[str]) -> str:
    """The form key a location lies in (``tags[2]`` lies in ``tags``), or ``""``."""
    for key in sorted(keys, key=len, reverse=True):
        if location.startswith(key) and location[len(key) : len(key) + 1] in ("[", "."):
            return key
    return ""


def _as_text(value: Any) -> str:
    """A value from a form as the text ``Host.set_config`` reads: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)
