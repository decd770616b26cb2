"""Discovery finds installed extensions through real entry points and manifests, importing none of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

# An extension whose import leaves a trace on disk, so a test can tell whether anything imported it.
TELLTALE = """
from pathlib import Path

with Path({marker!r}).open("a") as marker:
    marker.write("imported\\n")

from symphony_core import Extension


class Ext(Extension):
    def greet(self, name):
        return f"hello {{name}}, from {{self.context.id}}"
"""


def test_discovery_reads_manifests_without_importing_extension_code(
    venv, install, make, home, hosts, tmp_path
):
    marker = tmp_path / "imported.txt"
    install(make.extension("acme.lazy", code=TELLTALE.format(marker=str(marker))))

    listed = make.by_id(venv.symphony_json(home, "list"))
    inspected = venv.symphony_json(home, "inspect", "acme.lazy")
    # Unguarded: its journal file lies outside any grant; the guard has its own tests.
    host = hosts(home, isolation="none")
    discovered = make.by_id(host("discover"))
    host_inspected = host.info("acme.lazy")

    assert listed["acme.lazy"]["state"] == discovered["acme.lazy"]["state"] == "validated"
    assert (
        inspected["manifest"]["summary"]
        == host_inspected["summary"]
        == "Exists to test the host with acme.lazy."
    )
    assert host("modules", "acme_lazy") == []
    assert not marker.exists()

    # The telltale works: starting the extension is what imports it, once.
    host("start", "acme.lazy")
    assert host("call", "acme.lazy", "greet", "ada") == "hello ada, from acme.lazy"
    assert host("modules", "acme_lazy") == ["acme_lazy"]
    assert marker.read_text() == "imported\n"


@pytest.mark.parametrize(
    ("backend", "editable", "recorded"),
    [
        ("hatchling", False, False),
        ("setuptools", False, False),
        ("hatchling", True, False),
        ("setuptools", True, False),
        ("hatchling", False, True),
    ],
    ids=[
        "hatchling-wheel",
        "setuptools-wheel",
        "hatchling-editable",
        "setuptools-editable",
        "hatchling-hook-wheel",
    ],
)
def test_an_extension_is_discovered_and_runs_whatever_built_or_installed_it(
    venv, install, make, home, hosts, backend, editable, recorded
):
    ext_id = f"acme.built-{backend}{'-editable' if editable else ''}{'-hook' if recorded else ''}"
    project = dataclasses.replace(make.greeter(ext_id), backend=backend, version="1.2.3", recorded=recorded)
    (installed,) = install(project, editable=editable)

    info = make.by_id(venv.symphony_json(home, "list"))[ext_id]

    assert (info["state"], info["version"], info["distribution"]) == ("validated", "1.2.3", project.name)
    assert info["problem"] is None
    assert info["manifest"]["version"] == "1.2.3"  # taken from the distribution when the manifest has none
    manifest_file = Path(info["manifest_file"])
    assert manifest_file.is_file()
    # A wheel's manifest is read where the wheel put it; an editable install's, in the author's tree.
    assert manifest_file.is_relative_to(installed if editable else venv.site_packages)
    host = hosts(home)
    host("start", ext_id)
    assert host("call", ext_id, "greet", "ada") == f"hello ada, from {ext_id}"


def test_the_discovery_index_follows_installs_upgrades_and_uninstalls(venv, install, make, home):
    def listed():
        return make.by_id(venv.symphony_json(home, "list")).get("acme.evolving")

    assert listed() is None
    install(make.greeter("acme.evolving"))
    assert listed()["version"] == "1.0.0"

    # Nothing changed: the second discovery reuses the index instead of writing it again.
    (index,) = (home / "cache").glob("discovery-*.msgpack")
    before = (index.stat().st_mtime_ns, index.stat().st_ino, index.read_bytes())
    assert listed()["version"] == "1.0.0"
    assert (index.stat().st_mtime_ns, index.stat().st_ino, index.read_bytes()) == before

    upgrade = make.greeter("acme.evolving", manifest_text=make.manifest("acme.evolving", name="Evolved"))
    install(dataclasses.replace(upgrade, version="2.0.0"))
    assert (listed()["version"], listed()["name"]) == ("2.0.0", "Evolved")
    assert index.read_bytes() != before[2]

    install.uninstall("acme-evolving")
    assert listed() is None


def test_editing_an_editable_extensions_manifest_is_seen_by_the_next_discovery(venv, install, make, home):
    (tree,) = install(make.greeter("acme.drafted"), editable=True)
    assert (
        make.by_id(venv.symphony_json(home, "list"))["acme.drafted"]["name"] == "Test extension acme.drafted"
    )

    (tree / "src" / "acme_drafted" / "symphony.toml").write_text(
        make.manifest("acme.drafted", name="Renamed")
    )

    assert make.by_id(venv.symphony_json(home, "list"))["acme.drafted"]["name"] == "Renamed"


def test_a_wheel_built_without_its_manifest_is_reported_not_hidden(venv, install, make, home):
    install(dataclasses.replace(make.greeter("acme.forgetful"), backend="setuptools", package_data=False))

    info = make.by_id(venv.symphony_json(home, "list"))["acme.forgetful"]

    assert info["state"] == "failed"
    assert info["problem"]["code"] == "entry-point"
    assert "ships no symphony.toml" in info["problem"]["message"]
    assert "make sure the build includes it" in info["problem"]["hint"]


def test_a_scan_finds_each_package_where_the_import_system_would(tmp_path: Path) -> None:
    """The scan lists each folder once instead of asking the import system per package: it must agree
    with it on regular packages, namespace portions spread over folders, modules shadowing later
    packages, and names found nowhere."""
    import importlib.machinery

    from symphony_core._catalog._discovery import _Packages

    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for folder, files in {
        first: ["spread/a.py", "shadowed.py", "mixed/x.py", "mixed.py"],
        second: ["regular/__init__.py", "spread/b.py", "shadowed/__init__.py", "compiled/__init__.pyc"],
        third: ["spread/c.py", "regular/__init__.py"],
    }.items():
        for file in files:
            (folder / file).parent.mkdir(parents=True, exist_ok=True)
            (folder / file).write_text("")
    path = [str(first), str(second), str(tmp_path / "missing"), str(third)]
    packages = _Packages(path)

    for name in ("regular", "spread", "shadowed", "mixed", "compiled", "absent"):
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        expected = None if spec is None else list(spec.submodule_search_locations or [])
        assert packages.find(name) == expected, name


def test_a_scan_reads_the_manifest_locate_manifest_finds_and_never_what_is_no_manifest(
    tmp_path: Path,
) -> None:
    """A scan opens each candidate manifest instead of asking first whether it is a file: it must find the
    same manifest `locate_manifest` does, skip a folder or a pipe by that name without blocking on it, and
    refuse a manifest too large to be one."""
    import os

    from symphony_core import write_distribution
    from symphony_core._catalog._discovery import locate_manifest, scan
    from symphony_core._model._sizes import MAX_MANIFEST_BYTES

    def manifest(ident: str) -> str:
        return f'id = "{ident}"\nkind = "operator"\nname = "N"\nsummary = "S."\ntargets = "symphony-operators>=0.1"\n'

    site = tmp_path / "site"
    cases = {  # id: (entry point, files)
        "acme.nested": (
            "acme_nested.deep.mod:Op",
            {"acme_nested/deep/symphony.toml": manifest("acme.nested")},
        ),
        "acme.upward": (
            "acme_upward.deep.mod:Op",
            {"acme_upward/deep/mod.py": "", "acme_upward/symphony.toml": manifest("acme.upward")},
        ),
        "acme.folder": ("acme_folder:Op", {"acme_folder/symphony.toml/x": "", "acme_folder/__init__.py": ""}),
        "acme.big": (
            "acme_big:Op",
            {"acme_big/symphony.toml": manifest("acme.big") + "#" * MAX_MANIFEST_BYTES},
        ),
        "acme.pipe": ("acme_pipe:Op", {"acme_pipe/__init__.py": ""}),
    }
    for ident, (point, files) in cases.items():
        package = point.split(".")[0].split(":")[0]
        write_distribution(
            site,
            ident.replace(".", "-"),
            files={f"{package}/__init__.py": "", **files},
            entry_points={"symphony.operators": {ident: point}},
            requires_python=">=3.10" if ident == "acme.nested" else None,
        )
    os.mkfifo(site / "acme_pipe" / "symphony.toml")  # nobody ever writes it: reading it would block
    (site / "acme_upward-1.0.0.dist-info").rename(site / "acme_upward.dist-info")  # its version: in METADATA

    records = {record.id: record for record in scan([str(site)]).records}

    for ident in ("acme.nested", "acme.upward"):
        point = cases[ident][0]
        expected = locate_manifest(ident, point, ident, path=[str(site)])
        assert records[ident].manifest_file == str(expected), ident
        assert records[ident].problem is None or records[ident].problem.code != "manifest", records[
            ident
        ].problem
    assert records["acme.nested"].requires_python == ">=3.10"
    assert records["acme.upward"].requires_python is None
    assert records["acme.upward"].distribution_version == "1.0.0"
    for ident in ("acme.folder", "acme.pipe"):
        assert records[ident].problem is not None
        assert "ships no symphony.toml" in records[ident].problem.message, ident
    big = records["acme.big"].problem
    assert big is not None
    assert big.code == "manifest"
    assert f"more than a manifest may be ({MAX_MANIFEST_BYTES})" in big.message


def test_the_metadatas_headers_are_read_past_a_folded_value_with_lines_of_white_space_only(
    tmp_path: Path,
) -> None:
    from symphony_core import write_distribution
    from symphony_core._catalog._discovery import scan

    site = tmp_path / "site"
    manifest = 'id = "acme.folded"\nkind = "operator"\nname = "N"\nsummary = "S."\ntargets = "symphony-operators>=0.1"\n'
    write_distribution(
        site,
        "acme-folded",
        files={"acme_folded/__init__.py": "", "acme_folded/symphony.toml": manifest},
        entry_points={"symphony.operators": {"acme.folded": "acme_folded:Op"}},
    )
    write_distribution(site, "symphony-operators", "0.1.0", files={}, entry_points={})
    folded = "License: Copyright (c) the authors\n        \n        Permission is granted.\n"
    for info, after in (
        ("acme_folded-1.0.0.dist-info", "Requires-Python: >=3.10\n"),
        (
            "symphony_operators-0.1.0.dist-info",
            'Requires-Dist: polars>=1.0\nRequires-Dist: rich; extra == "x"\n',
        ),
    ):
        metadata = site / info / "METADATA"
        head, _, body = metadata.read_text().partition("\n\n")
        metadata.write_text(f"{head}\n{folded}{after}\nA long description.\n\nRequires-Python: <3\n{body}")

    catalog = scan([str(site)])

    (record,) = catalog.records
    assert record.requires_python == ">=3.10"
    assert catalog.package_requires["symphony-operators"] == ("polars>=1.0", 'rich; extra == "x"')
