"""The JSON Schema of ``symphony.toml``, made from the manifest models, for editors that check a manifest
as it is typed.

Taplo (and the editors built on it, such as VS Code's Even Better TOML) read a ``#:schema URL`` line at
the top of a TOML file; scaffolded manifests carry one pointing at the copy the documentation publishes.
The schema checks what a model can say about a field (types, lengths, required keys, unknown keys);
``symphony validate`` checks the rest (placeholders in paths, compatibility, the code beside it).
"""

from __future__ import annotations

from typing import Any

SCHEMA_URL = "https://symphony-sdk.readthedocs.io/en/latest/schema/symphony.json"
"""Where the documentation publishes the schema of the current release."""
SCHEMA_DIRECTIVE = f"#:schema {SCHEMA_URL}"
"""The first line of a scaffolded manifest, which Taplo-based editors read."""


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``symphony.toml`` manifest."""
    from symphony_core._model._manifest import Manifest

    schema = Manifest.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_URL,
        **schema,
        "title": "symphony.toml",
        "description": "The manifest of a Symphony extension: what it is, what it targets, and what it asks "
        "to reach, with a reason for each permission. Checked in full by `symphony validate`.",
    }
