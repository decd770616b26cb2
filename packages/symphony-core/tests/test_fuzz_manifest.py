"""Manifests, permission patterns, entry points and config values of any shape, fuzzed: the host answers
with a `SymphonyError` naming what is wrong, or accepts what is safe to accept, and nothing else.

What an installed distribution ships is not trusted: its ``symphony.toml``, its ``entry_points.txt`` and
the config values a person types are inputs. Hypothesis makes them, from raw bytes to manifests that are
valid but for one field; ``--fuzz`` runs 100 times as many examples (the repository's conftest.py).
"""

from __future__ import annotations

import string
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symphony_core import ConfigError, Host, ManifestError, SymphonyError, write_distribution
from symphony_core._catalog._discovery import locate_manifest, scan
from symphony_core._model._manifest import Manifest, read_manifest, validate_manifest

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
VALID: dict[str, Any] = {
    "id": "acme.fuzzed",
    "kind": "motif",
    "name": "Fuzzed",
    "summary": "Exists to be fuzzed.",
    "targets": "symphony-motifs>=0.1,<0.2",
}
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=60)
    | st.sampled_from(
        ["{data}", "{cache}", "{home}", "/", "..", "*", "{data}/../x", "/etc/*", "a:1", ":", "*:*"]
    )
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
pieces = st.sampled_from(
    ["{data}", "{cache}", "{home}", "", "/", "..", ".", "*", "**", "x", "~", "\x00", "\\", "%"]
)
patterns = st.lists(pieces, min_size=1, max_size=6).map("/".join) | st.text(max_size=40)
permissions = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["fs.read", "fs.write"]), "paths": st.lists(patterns, max_size=3)}
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["net.connect", "net.listen"]),
            "hosts": st.lists(
                st.builds(lambda h, p: f"{h}:{p}", st.text(max_size=12), st.text(max_size=6))
                | st.text(max_size=20),
                max_size=3,
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("subprocess"), "commands": st.lists(st.text(max_size=20), max_size=3)}
    ),
    st.fixed_dictionaries({"type": st.just("env"), "names": st.lists(st.text(max_size=20), max_size=3)}),
    st.dictionaries(st.sampled_from(["type", "paths", "hosts", "reason", "names"]), values, max_size=4),
).flatmap(
    lambda permission: st.builds(
        lambda reason: {**permission, "reason": reason} if reason is not None else permission,
        st.none() | st.text(max_size=40) | st.sampled_from(["...", "", "Reads {data}.", "x" * 600]),
    )
)


@settings(suppress_health_check=FIXTURES)
@given(text=st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_a_manifest_file_of_any_bytes_is_read_or_refused_naming_the_file(tmp_path: Path, text: bytes) -> None:
    file = tmp_path / "symphony.toml"
    file.write_bytes(text)

    try:
        manifest = read_manifest(file)
    except ManifestError as exc:
        refused = exc
    else:
        assert isinstance(manifest, Manifest)
        return
    assert refused.file == str(file)
    assert str(file) in str(refused)


@given(
    field=st.sampled_from(
        [*VALID, "version", "requires_python", "config", "contributes", "permissions", "x"]
    ),
    value=values,
)
def test_a_manifest_with_any_value_in_one_field_is_valid_or_refused_naming_that_field(
    field: str, value: Any
) -> None:
    data = {**VALID, field: value}

    try:
        manifest = validate_manifest(data, file="symphony.toml", distribution_version="1.0.0")
    except ManifestError as exc:
        refused = exc
    else:
        manifest.model_dump(mode="json", by_alias=True)
        return
    assert refused.problems, "a refusal says which field"
    assert all(problem.location.startswith("symphony.toml: ") for problem in refused.problems)


@given(requested=st.lists(permissions, max_size=3))
def test_accepted_permissions_reach_only_absolute_paths_or_an_extensions_own_folders(
    requested: list[dict[str, Any]],
) -> None:
    try:
        manifest = validate_manifest({**VALID, "permissions": requested}, file="symphony.toml")
    except ManifestError:
        return
    for permission in manifest.permissions:
        for path in getattr(permission, "paths", ()):
            assert path.startswith(("/", "{data}", "{cache}", "{home}")), path
            parts = path.split("/")
            assert ".." not in parts, path
            assert "." not in parts, path
            assert "\x00" not in path
        for pair in getattr(permission, "hosts", ()):
            host, _, port = pair.rpartition(":")
            assert host, pair
            assert port == "*" or (port.isdigit() and 0 < int(port) < 65536), pair
        assert permission.reason
        assert permission.reason.strip() not in ("", "...")


entry_values = st.text(alphabet=string.ascii_letters + string.digits + "._:- \t[]=#", max_size=40) | st.text(
    max_size=40
)


@settings(suppress_health_check=FIXTURES)
@given(name=st.text(max_size=30), value=entry_values)
def test_any_entry_point_value_locates_a_manifest_or_is_refused(
    tmp_path: Path, name: str, value: str
) -> None:
    try:
        found = locate_manifest(name, value, "acme-fuzzed", path=[str(tmp_path)])
    except SymphonyError:
        return
    assert found.name == "symphony.toml"
    assert tmp_path in found.parents


@settings(suppress_health_check=FIXTURES, max_examples=50)
@given(points=st.text(max_size=300), manifest=st.text(max_size=300))
def test_a_distribution_with_any_entry_points_and_manifest_is_scanned_without_raising(
    tmp_path_factory: pytest.TempPathFactory, points: str, manifest: str
) -> None:
    site = tmp_path_factory.mktemp("site")
    info = site / "acme_fuzzed-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-fuzzed\nVersion: 1.0.0\n\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[symphony.motifs]\n{points}\n", encoding="utf-8")
    (site / "acme_fuzzed").mkdir()
    (site / "acme_fuzzed" / "__init__.py").write_text("", encoding="utf-8")
    (site / "acme_fuzzed" / "symphony.toml").write_text(manifest, encoding="utf-8")

    catalog = scan([str(site)])

    for record in catalog.records:
        assert record.problem is not None or record.manifest_file is not None


CONFIGURED = """
from symphony_core import Config, Extension


class Settings(Config):
    threshold: float = 0.5
    label: str = "x"
    limits: dict[str, int] = {}


class Configured(Extension):
    pass
"""


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Host:
    """An in-process host with one extension whose config has a model (nothing of it runs but the model)."""
    root = tmp_path_factory.mktemp("configured")
    site = root / "site"
    manifest = {**VALID, "id": "acme.configured", "config": "acme_configured:Settings"}
    write_distribution(
        site,
        "acme-configured",
        files={
            "acme_configured/__init__.py": CONFIGURED,
            "acme_configured/symphony.toml": tomli_w.dumps(manifest),
        },
        entry_points={"symphony.motifs": {"acme.configured": "acme_configured:Configured"}},
    )
    sys.path.insert(0, str(site))
    host = Host(root / "home", isolation="none", path=[str(site), *sys.path])
    host.discover()
    return host


@settings(suppress_health_check=FIXTURES)
@given(
    key=st.sampled_from(["threshold", "label", "limits", "limits.a", "nope", "", ".", "a..b"])
    | st.text(max_size=20),
    value=st.text(max_size=40) | st.sampled_from(["null", "1e999", "[1]", '{"a": 1}', "NaN", "-0"]),
)
def test_any_config_value_is_stored_valid_or_refused_leaving_the_stored_ones_unchanged(
    configured: Host, key: str, value: str
) -> None:
    before = configured.state.config_overrides("acme.configured")

    try:
        configured.set_config("acme.configured", key, value)
    except ConfigError as exc:
        refused = exc
    else:
        assert configured.config("acme.configured") is not None
        configured.unset_config("acme.configured")
        return
    assert refused.extension == "acme.configured"
    assert configured.state.config_overrides("acme.configured") == before
