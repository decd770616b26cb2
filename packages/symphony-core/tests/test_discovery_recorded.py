"""The copy of the manifests a build records in a wheel's metadata: a cold scan reads it instead of each
manifest, gets the same records, and ignores any copy the installed files do not vouch for."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from symphony_core import EntryPointError, ManifestError, write_distribution
from symphony_core._catalog._discovery import scan
from symphony_core._catalog._recorded import RECORDED_FILE, record_hash

GROUP = "symphony.operators"


def manifest(ext_id: str, **fields: Any) -> str:
    values = {
        "id": ext_id,
        "kind": "operator",
        "name": f"Operator {ext_id}",
        "summary": "Exists to test recorded manifests.",
        "targets": "symphony-operators>=0.1,<0.2",
        **fields,
    }
    text = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items() if key != "permissions")
    for permission in values.get("permissions", ()):
        text += "\n[[permissions]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in permission.items())
    return text


READS = [{"type": "fs.read", "paths": ["{data}/*.csv"], "reason": "reads its tables"}]

# name: (files, entry points); every one a distribution a scan must describe the same way with or without
# its recorded copy.
DISTRIBUTIONS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "plain": ({"acme_plain/__init__.py": "", "acme_plain/symphony.toml": manifest("acme.plain")}, {}),
    "versioned": (
        {
            "acme_versioned/__init__.py": "",
            "acme_versioned/symphony.toml": manifest("acme.versioned", version="2.0"),
        },
        {},
    ),
    "nested": (
        {
            "acme_nested/__init__.py": "",
            "acme_nested/symphony.toml": manifest("acme.outer"),
            "acme_nested/inner/__init__.py": "",
            "acme_nested/inner/symphony.toml": manifest("acme.inner", permissions=READS),
        },
        {"acme.outer": "acme_nested.ops:Outer", "acme.inner": "acme_nested.inner.ops:Inner"},
    ),
}


def entry_points_of(name: str, points: dict[str, str]) -> dict[str, dict[str, str]]:
    module = f"acme_{name}"
    return {GROUP: points or {f"acme.{name}": f"{module}:Op"}}


def write_site(site: Path, *, recorded: bool) -> None:
    write_distribution(site, "symphony-operators", "0.1.0")  # what the manifests target
    for name, (files, points) in DISTRIBUTIONS.items():
        write_distribution(
            site,
            f"acme-{name}",
            "2.0",
            files=files,
            entry_points=entry_points_of(name, points),
            requires_python=">=3.10",
            recorded=recorded,
        )


def described(site: Path) -> dict[str, dict[str, Any]]:
    """What a scan of ``site`` says of each extension, with the site's own path left out."""
    records = {}
    for record in scan([str(site)]).records:
        fields = {f: getattr(record, f) for f in record.__struct_fields__ if f != "distribution_sha256"}
        fields["manifest_data"] = record.manifest
        if record.manifest_file is not None:
            fields["manifest_file"] = Path(record.manifest_file).relative_to(site).as_posix()
        records[record.id] = fields
    return records


def info_folder(site: Path, name: str) -> Path:
    (info,) = site.glob(f"acme_{name}-*.dist-info")
    return info


def test_a_scan_of_recorded_copies_gives_the_records_a_scan_of_the_manifests_gives(tmp_path: Path) -> None:
    recorded, plain = tmp_path / "recorded", tmp_path / "plain"
    write_site(recorded, recorded=True)
    write_site(plain, recorded=False)

    assert (info_folder(recorded, "plain") / RECORDED_FILE).is_file()
    assert not (info_folder(plain, "plain") / RECORDED_FILE).exists()
    assert described(recorded) == described(plain)
    assert sorted(described(recorded)) == ["acme.inner", "acme.outer", "acme.plain", "acme.versioned"]
    assert described(recorded)["acme.inner"]["manifest_data"]["permissions"][0]["paths"] == ["{data}/*.csv"]


def test_a_scan_reads_the_recorded_copy_instead_of_the_manifest(tmp_path: Path) -> None:
    recorded, plain = tmp_path / "recorded", tmp_path / "plain"
    write_site(recorded, recorded=True)
    write_site(plain, recorded=False)
    for site in (recorded, plain):
        (site / "acme_plain" / "symphony.toml").unlink()

    assert described(recorded)["acme.plain"]["problem"] is None
    assert described(recorded)["acme.plain"]["manifest_data"]["name"] == "Operator acme.plain"
    assert "ships no symphony.toml" in described(plain)["acme.plain"]["problem"].message


def _rewrite(info: Path, change: Callable[[dict[str, Any]], None]) -> None:
    copy = info / RECORDED_FILE
    data = json.loads(copy.read_bytes())
    change(data)
    copy.write_text(json.dumps(data))


def _forge_name(data: dict[str, Any]) -> None:
    for entry in data["extensions"]:
        entry["manifest"]["name"] = "Forged"


def _also(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        _forge_name(data)
        for other in changes:
            other(data)

    return change


def _entries(key: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for entry in data["extensions"]:
            entry[key] = value

    return change


def _naming(extension: str, manifest_file: str) -> Callable[[dict[str, Any]], None]:
    """Point ``extension``'s entry at another manifest of the distribution, with that file's real hash."""

    def change(data: dict[str, Any]) -> None:
        for entry in data["extensions"]:
            if entry["name"] == extension:
                entry["manifest_file"] = manifest_file
                entry["manifest_hash"] = DISTRIBUTIONS_HASH[manifest_file]

    return change


FORGERIES: dict[str, tuple[str, Callable[[dict[str, Any]], None] | str]] = {
    # the manifest's hash is not the one RECORD lists for the installed file
    "hash": ("plain", _also(_entries("manifest_hash", record_hash(b"another manifest")))),
    # another entry point than entry_points.txt declares
    "entry point": ("plain", _also(_entries("value", "acme_plain:Other"))),
    # a manifest the scan would not read: farther from the module than the nearest one
    "farther manifest": ("nested", _also(_naming("acme.inner", "acme_nested/symphony.toml"))),
    # a manifest in the distribution but not on the way from the module up to its top-level package
    "off the module's path": ("nested", _also(_naming("acme.outer", "acme_nested/inner/symphony.toml"))),
    # a file of the package that is no manifest
    "not a manifest": (
        "plain",
        _also(
            _entries("manifest_file", "acme_plain/__init__.py"), _entries("manifest_hash", record_hash(b""))
        ),
    ),
    # one entry point of two missing from the copy
    "missing entry": ("nested", _also(lambda data: data["extensions"].pop())),
    "other format": ("plain", _also(lambda data: data.update(format=2))),
    "unknown field": ("plain", _also(lambda data: data.update(signed_by="nobody"))),
    "not JSON": ("plain", "{not json"),
}
DISTRIBUTIONS_HASH = {
    path: record_hash(text.encode()) for files, _ in DISTRIBUTIONS.values() for path, text in files.items()
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_copy_the_installed_files_do_not_vouch_for_is_ignored(tmp_path: Path, forgery: str) -> None:
    site = tmp_path / "site"
    write_site(site, recorded=True)
    name, change = FORGERIES[forgery]
    info = info_folder(site, name)
    if isinstance(change, str):
        (info / RECORDED_FILE).write_text(change)
    else:
        _rewrite(info, change)

    found = {key: value for key, value in described(site).items() if value["distribution"] == f"acme-{name}"}

    assert found
    for record in found.values():  # the manifests themselves were read
        assert record["problem"] is None
        assert record["manifest_data"]["name"] == f"Operator {record['id']}"


def test_a_package_shadowed_earlier_on_the_path_is_read_where_an_import_finds_it(tmp_path: Path) -> None:
    site, earlier = tmp_path / "site", tmp_path / "earlier"
    write_site(site, recorded=True)
    (earlier / "acme_plain").mkdir(parents=True)
    (earlier / "acme_plain" / "__init__.py").write_text("")
    (earlier / "acme_plain" / "symphony.toml").write_text(manifest("acme.plain", name="The shadowing one"))

    (record,) = (r for r in scan([str(earlier), str(site)]).records if r.id == "acme.plain")

    assert record.manifest is not None
    assert record.manifest["name"] == "The shadowing one"
    assert record.manifest_file == str(earlier / "acme_plain" / "symphony.toml")


def test_a_copy_is_validated_again_and_a_bad_one_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site(site, recorded=True)

    def break_it(data: dict[str, Any]) -> None:
        data["extensions"][0]["manifest"]["permissions"] = [{"type": "fs.read", "paths": 7}]

    _rewrite(info_folder(site, "plain"), break_it)

    problem = described(site)["acme.plain"]["problem"]
    assert problem is not None
    assert problem.code == "manifest"
    assert "permissions" in problem.message
    assert described(site)["acme.versioned"]["problem"] is None


def test_recording_fails_on_a_manifest_discovery_would_refuse(tmp_path: Path) -> None:
    files = {
        "acme_bad/__init__.py": "",
        "acme_bad/symphony.toml": manifest("acme.bad", targets="nothing here"),
    }
    with pytest.raises(ManifestError, match=r"acme_bad/symphony\.toml"):
        write_distribution(
            tmp_path,
            "acme-bad",
            files=files,
            entry_points={GROUP: {"acme.bad": "acme_bad:Op"}},
            recorded=True,
        )
    mismatched = {"acme_bad/__init__.py": "", "acme_bad/symphony.toml": manifest("acme.other")}
    with pytest.raises(ManifestError, match=r"entry point is operator 'acme\.bad'"):
        write_distribution(
            tmp_path,
            "acme-bad",
            files=mismatched,
            entry_points={GROUP: {"acme.bad": "acme_bad:Op"}},
            recorded=True,
        )


def test_the_build_hook_records_the_manifests_in_a_wheel_and_fails_a_broken_one(venv, make, tmp_path) -> None:
    """Built by hatchling with the core's hook, as an author's project enables it."""
    project = dataclasses.replace(make.greeter("acme.hooked"), recorded=True)
    wheel = venv.build(project, tmp_path / "ok")

    with zipfile.ZipFile(wheel) as archive:
        (copy_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/" + RECORDED_FILE)]
        copy = json.loads(archive.read(copy_name))
        record = archive.read(copy_name.split("/")[0] + "/RECORD").decode()
        toml = archive.read("acme_hooked/symphony.toml")
    (entry,) = copy["extensions"]
    assert (entry["group"], entry["name"], entry["value"]) == (
        "symphony.motifs",
        "acme.hooked",
        "acme_hooked:Ext",
    )
    assert entry["manifest_file"] == "acme_hooked/symphony.toml"
    assert entry["manifest_hash"] == record_hash(toml)
    assert f"acme_hooked/symphony.toml,{entry['manifest_hash']}," in record
    assert entry["manifest"]["version"] == "1.0.0"
    assert copy["requires_python"] == ">=3.10"

    # An editable build records nothing: its manifests are read from the project as they change.
    folder = project.write(tmp_path / "editable")
    built = venv.run(
        "sh",
        "-c",
        f'cd "{folder}" && "{venv.build_python}" -c "import hatchling.build as b; print(b.build_editable(\'out\'))"',
    )
    with zipfile.ZipFile(folder / "out" / built.stdout.strip()) as archive:
        assert not [n for n in archive.namelist() if n.endswith(RECORDED_FILE)]

    broken = dataclasses.replace(
        make.greeter("acme.broken", manifest_text=make.manifest("acme.broken", targets="nothing here")),
        recorded=True,
    )
    with pytest.raises(AssertionError) as failed:
        venv.build(broken, tmp_path / "broken")
    message = str(failed.value)
    assert "Symphony build hook" in message
    assert "acme_broken/symphony.toml: targets" in message
    assert str(tmp_path / "broken") in message  # the project's own file is named too
    shutil.rmtree(tmp_path / "broken", ignore_errors=True)


def test_an_installed_wheel_is_discovered_from_its_recorded_copy(venv, install, make, home) -> None:
    install(dataclasses.replace(make.greeter("acme.copied"), recorded=True), make.greeter("acme.uncopied"))
    for module in ("acme_copied", "acme_uncopied"):
        (venv.site_packages / module / "symphony.toml").unlink()

    listed = make.by_id(venv.symphony_json(home, "list"))

    assert listed["acme.copied"]["problem"] is None
    assert listed["acme.copied"]["name"] == "Test extension acme.copied"
    assert listed["acme.copied"]["manifest_file"] == str(venv.site_packages / "acme_copied" / "symphony.toml")
    assert "ships no symphony.toml" in listed["acme.uncopied"]["problem"]["message"]


def test_validate_refuses_a_wheel_whose_recorded_copy_disagrees_with_its_manifests(tmp_path: Path) -> None:
    from symphony_core._authoring._validate import validate

    files = {"acme_plain/__init__.py": "", "acme_plain/symphony.toml": manifest("acme.plain")}
    points = {GROUP: {"acme.plain": "acme_plain:Op"}}
    (tmp_path / "good").mkdir()
    built = write_distribution(
        tmp_path / "good", "acme-plain", "2.0", files=files, entry_points=points, wheel=True, recorded=True
    )

    def about_the_copy(wheel: Path) -> list[str]:
        return [f.message for f in validate(wheel).findings if "recorded copy" in f.message]

    assert about_the_copy(built) == []

    forged = tmp_path / "forged" / built.name
    forged.parent.mkdir()
    with zipfile.ZipFile(built) as source, zipfile.ZipFile(forged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith(RECORDED_FILE):
                copy = json.loads(data)
                copy["extensions"][0]["manifest"]["name"] = "Forged"
                data = json.dumps(copy).encode()
            target.writestr(item, data)

    (message,) = about_the_copy(forged)
    assert "disagrees with the wheel's entry points, symphony.toml files or Requires-Python" in message


def test_a_malformed_entry_point_fails_the_recording_and_a_copy_of_one_is_not_read(tmp_path: Path) -> None:
    files = {"acme_plain/__init__.py": "", "acme_plain/symphony.toml": manifest("acme.plain")}
    with pytest.raises(EntryPointError, match="malformed"):
        write_distribution(
            tmp_path / "refused",
            "acme-plain",
            files=files,
            entry_points={GROUP: {"acme.plain": "acme_plain"}},
            recorded=True,
        )

    site = tmp_path / "site"
    write_site(site, recorded=True)
    info = info_folder(site, "plain")
    points = info / "entry_points.txt"
    points.write_text(points.read_text().replace("acme_plain:Op", "acme_plain"))
    _rewrite(info, _entries("value", "acme_plain"))  # a copy made to match the malformed entry point

    problem = described(site)["acme.plain"]["problem"]
    assert problem is not None
    assert problem.code == "entry-point"
    assert "is malformed" in problem.message


def test_a_copy_larger_than_a_manifest_may_be_is_not_read(tmp_path: Path) -> None:
    from symphony_core._model._sizes import MAX_MANIFEST_BYTES

    site = tmp_path / "site"
    write_site(site, recorded=True)
    info = info_folder(site, "plain")
    copy = json.loads((info / RECORDED_FILE).read_bytes())
    copy["extensions"][0]["manifest"]["name"] = "Forged"
    (info / RECORDED_FILE).write_text(json.dumps(copy) + " " * (2 * MAX_MANIFEST_BYTES))

    assert described(site)["acme.plain"]["manifest_data"]["name"] == "Operator acme.plain"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_copy_that_is_a_named_pipe_never_blocks_the_scan(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site(site, recorded=True)
    copy = info_folder(site, "plain") / RECORDED_FILE
    copy.unlink()
    os.mkfifo(copy)  # no writer: a blocking open or read would wait forever

    found: list[dict[str, dict[str, Any]]] = []
    scanning = threading.Thread(target=lambda: found.append(described(site)), daemon=True)
    scanning.start()
    scanning.join(30)

    assert not scanning.is_alive(), "the scan blocked on a named pipe"
    assert found[0]["acme.plain"]["problem"] is None  # read from its manifest instead


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("file", ["RECORD", "entry_points.txt", "METADATA"])
def test_a_named_pipe_in_a_distributions_metadata_never_blocks_the_scan(tmp_path: Path, file: str) -> None:
    site = tmp_path / "site"
    write_site(site, recorded=False)
    target = info_folder(site, "plain") / file
    target.unlink()
    os.mkfifo(target)

    found: list[dict[str, dict[str, Any]]] = []
    scanning = threading.Thread(target=lambda: found.append(described(site)), daemon=True)
    scanning.start()
    scanning.join(30)

    assert not scanning.is_alive(), f"the scan blocked on a named pipe for {file}"
    assert "acme.versioned" in found[0]  # the other distributions are found as ever
