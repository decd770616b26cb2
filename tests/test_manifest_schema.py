"""The JSON Schema editors check a manifest with: every shipped and scaffolded manifest passes it, the
mistakes a model can see are caught while typing, and `symphony schema` prints what the docs publish."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomllib

from symphony_core._authoring._schema import SCHEMA_URL, manifest_schema

ROOT = Path(__file__).resolve().parents[1]
SYMPHONY = str(Path(sys.executable).parent / "symphony")
EXAMPLE_MANIFESTS = sorted((ROOT / "examples").glob("*/src/**/symphony.toml"))


def _validator() -> jsonschema.protocols.Validator:
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(manifest: dict[str, Any]) -> list[str]:
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(manifest)
    )


def test_the_example_manifests_are_found() -> None:
    assert len(EXAMPLE_MANIFESTS) >= 6


@pytest.mark.parametrize("path", EXAMPLE_MANIFESTS, ids=lambda path: str(path.relative_to(ROOT / "examples")))
def test_every_example_manifest_passes_the_schema(path: Path) -> None:
    assert _errors(tomllib.loads(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("kind", ["instrument", "operator", "motif"])
def test_a_scaffolded_manifest_passes_the_schema_and_names_it_for_editors(kind: str, tmp_path: Path) -> None:
    made = subprocess.run(
        [SYMPHONY, "new", kind, "acme-thing", "--dir", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    (manifest,) = (tmp_path / "p").glob("src/*/symphony.toml")
    text = manifest.read_text(encoding="utf-8")

    assert text.splitlines()[0] == f"#:schema {SCHEMA_URL}"
    assert _errors(tomllib.loads(text)) == []


def test_mistakes_a_model_can_see_are_caught_as_the_manifest_is_typed() -> None:
    good = tomllib.loads(EXAMPLE_MANIFESTS[0].read_text(encoding="utf-8"))

    assert any(
        "'kind' is a required property" in error
        for error in _errors({k: v for k, v in good.items() if k != "kind"})
    )
    assert any(
        "Additional properties are not allowed ('summery'" in e for e in _errors({**good, "summery": "typo"})
    )
    assert any(
        e.startswith("permissions/0")
        for e in _errors({**good, "permissions": [{"type": "fs.read", "paths": ["/x"]}]})
    )
    assert any(e.startswith("name:") for e in _errors({**good, "name": "x" * 300}))


def test_symphony_schema_prints_and_writes_the_published_schema(tmp_path: Path) -> None:
    printed = subprocess.run([SYMPHONY, "schema"], capture_output=True, text=True, check=True)
    written = subprocess.run(
        [SYMPHONY, "schema", "--out", str(tmp_path / "s.json")],
        capture_output=True,
        text=True,
        check=True,
    )

    assert json.loads(printed.stdout) == manifest_schema()
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["$id"] == SCHEMA_URL
    assert "wrote the manifest schema" in written.stderr
