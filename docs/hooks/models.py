"""Render pydantic models into the docs, so the manifest and permission reference cannot drift from code.

A page asks for a model with a marker on a line of its own:

    <!-- symphony-model: symphony_core._model._manifest:Manifest -->
    <!-- symphony-schema: symphony_core._model._manifest:Manifest -->

The first becomes the model's docstring and a table of its fields (name as written in a file, type,
default, description); the second becomes the model's JSON Schema in a collapsed block.

After the build, the manifest's JSON Schema is written to ``schema/symphony.json`` in the site, the URL
scaffolded manifests name in their ``#:schema`` line.

The models are imported from the workspace's source folders, so the docs environment does not install
the workspace. A kit's package is registered without running its ``__init__`` (which imports
onnxruntime or pywebview): only the module holding the model runs, with what it imports itself
(pydantic, and numpy or polars for the instruments' and operators' contribution models).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- symphony-(model|schema): ([\w.]+):(\w+) -->$", re.MULTILINE)


KITS = ("symphony_instruments", "symphony_operators", "symphony_motifs")


def on_config(config: Any) -> Any:
    """Make the core and the kits' modules importable from their source folders."""
    source = str(ROOT / "packages" / "symphony-core" / "src")
    if source not in sys.path:
        sys.path.insert(0, source)
    for kit in KITS:
        if kit not in sys.modules:
            folder = ROOT / "packages" / kit.replace("_", "-") / "src" / kit
            package = types.ModuleType(kit)
            package.__path__ = [str(folder)]
            sys.modules[kit] = package
    return config


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace each marker with the rendered model."""

    def render(match: re.Match[str]) -> str:
        what, module, name = match.groups()
        model = getattr(importlib.import_module(module), name)
        return render_fields(model) if what == "model" else render_schema(model)

    return MARKER.sub(render, markdown)


def render_fields(model: Any) -> str:
    """The model's docstring and one table row per field, in declaration order."""
    schema = model.model_json_schema(by_alias=True)
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    rows = ["| field | type | required / default | description |", "|---|---|---|---|"]
    # A discriminator (`type = "fs.read"`) is what selects the model: it is always written, so it goes first.
    fields = sorted(model.model_fields.items(), key=lambda item: item[0] != "type")
    for name, field in fields:
        key = field.alias or name
        spec = properties.get(key, {})
        description = field.description or ""
        if key == "type" and "const" in spec:
            default = "**required**"
            description = "Which kind of resource the request is about."
        elif field.is_required():
            default = "**required**"
        elif key not in required and spec.get("default") is not None:
            default = f"`{json.dumps(spec['default'])}`"
        else:
            default = "optional"
        rows.append(f"| `{key}` | {_type(spec, schema)} | {default} | {_cell(description)}{_limits(spec)} |")
    doc = inspect.getdoc(model) or ""
    return f"{doc}\n\n" + "\n".join(rows) + "\n"


def render_schema(model: Any) -> str:
    """The model's JSON Schema (by alias, as the file is written), collapsed."""
    text = json.dumps(model.model_json_schema(by_alias=True), indent=2)
    return (
        f'<details markdown="1">\n<summary>JSON Schema of <code>{model.__name__}</code></summary>\n\n'
        f"```json\n{text}\n```\n\n</details>\n"
    )


def _type(spec: dict[str, Any], schema: dict[str, Any]) -> str:
    """A short type name from a JSON Schema property."""
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in spec["enum"])
    if "$ref" in spec:
        return f"`{spec['$ref'].rsplit('/', 1)[-1]}`"
    if "anyOf" in spec:
        options = [_type(option, schema) for option in spec["anyOf"]]
        return " or ".join(option for option in options if option != "`null`") or "`null`"
    kind = spec.get("type")
    if kind == "array":
        items = spec.get("items", {})
        if "oneOf" in items or "discriminator" in items:
            names = [ref["$ref"].rsplit("/", 1)[-1] for ref in items.get("oneOf", []) if "$ref" in ref]
            return "list of " + ", ".join(f"[`{n}`](permissions.md#{n.lower()})" for n in names)
        return f"list of {_type(items, schema)}"
    if kind == "object":
        return "table"
    if kind is None:
        return "any"
    return f"`{kind}`"


def _limits(spec: dict[str, Any]) -> str:
    """Constraints worth stating beside the description."""
    parts = []
    if "pattern" in spec:
        parts.append(f"matches `{spec['pattern']}`")
    if spec.get("minLength", 0) == 1 or spec.get("minItems", 0) == 1:
        parts.append("not empty")
    elif "minLength" in spec:
        parts.append(f"at least {spec['minLength']} characters")
    if "maxLength" in spec:
        parts.append(f"at most {spec['maxLength']} characters")
    if "minimum" in spec and "maximum" in spec:
        parts.append(f"from {spec['minimum']} to {spec['maximum']}")
    elif "minimum" in spec:
        parts.append(f"at least {spec['minimum']}")
    elif "maximum" in spec:
        parts.append(f"at most {spec['maximum']}")
    return f" <br>*{'; '.join(parts)}*" if parts else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def on_post_build(config: Any) -> None:
    """Publish the manifest's JSON Schema beside the pages, where scaffolded manifests point editors."""
    from symphony_core._authoring._schema import manifest_schema

    target = Path(config["site_dir"]) / "schema" / "symphony.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(manifest_schema(), indent=2) + "\n", encoding="utf-8")
