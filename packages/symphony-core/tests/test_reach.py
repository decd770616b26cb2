"""What a person is asked to consent to reads as what it is: paths that cannot climb out, bounded sizes,
no hidden characters, and the reach of each grant on this machine, as data the CLI renders.

Real manifests are validated by the real models, and consent is evaluated against a real host state file
and real folders; the command's rendering of the same summary is tested in ``test_consent.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from symphony_core._model._errors import ManifestError
from symphony_core._model._manifest import validate_manifest
from symphony_core._model._sizes import MAX_REASON_LENGTH, MAX_SCOPES
from symphony_core._security._grants import Consent, evaluate
from symphony_core._security._grants import Policy as HostPolicy
from symphony_core._security._reach import Roots, own_folder
from symphony_core._store._home import Home
from symphony_core._store._state import HostState

EXTENSION = "acme.reach"
FILE = "src/acme_reach/symphony.toml"


def manifest(*permissions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid operator manifest asking for ``permissions``; ``fields`` replace or add fields."""
    return {
        "id": EXTENSION,
        "kind": "operator",
        "name": "Reach",
        "summary": "Asks for things, to show what they reach.",
        "targets": "symphony-operators>=0.1,<0.2",
        "permissions": list(permissions),
        **fields,
    }


def reads(*paths: str, reason: str = "Reads the tables you give it.") -> dict[str, Any]:
    return {"type": "fs.read", "paths": list(paths), "reason": reason}


def problems(data: dict[str, Any]) -> dict[str, str]:
    """The problems ``validate_manifest`` reports, by location (``file: field``)."""
    with pytest.raises(ManifestError) as refused:
        validate_manifest(data, file=FILE)
    assert refused.value.extension == EXTENSION
    assert refused.value.hint
    return {p.location: p.message.removeprefix("Value error, ") for p in refused.value.problems}


# What a manifest may not say


def test_a_path_that_climbs_out_of_its_folder_is_refused_naming_the_file_and_field() -> None:
    found = problems(manifest(reads("{data}/*.csv", "{data}/../../..")))

    assert found == {
        f"{FILE}: permissions[0].fs.read.paths[1]": (
            "'{data}/../../..' has a '..' part, which leaves the folder before it: name the folder itself"
        )
    }


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("models/*.onnx", "'models/*.onnx' is not absolute: start it with {data}, {cache}, {home} or /"),
        ("~/.ssh/id_rsa", "'~/.ssh/id_rsa' is not absolute: start it with {data}, {cache}, {home} or /"),
        ("{tmp}/x", "'{tmp}/x' uses the unknown variable {tmp}"),
        ("{data}-other", "'{data}-other': a variable may only start a path, followed by '/' or nothing"),
        ("/srv/{home}", "'/srv/{home}': a variable may only start a path, followed by '/' or nothing"),
        ("{cache}/./x", "'{cache}/./x' has a '.' part: leave it out"),
        (
            "{data}/\x00/x",
            "'{data}/\\x00/x' holds the invisible or control character U+0000 CONTROL CHARACTER",
        ),
        (
            "{data}/\u200bx",
            "'{data}/\\u200bx' holds the invisible or control character U+200B ZERO WIDTH SPACE",
        ),
    ],
)
def test_paths_must_be_absolute_plain_and_use_only_the_known_variables(path: str, problem: str) -> None:
    (message,) = problems(manifest(reads(path))).values()

    assert message.startswith(problem)


def test_absolute_paths_outside_the_variables_are_allowed() -> None:
    validated = validate_manifest(manifest(reads("/usr/share/dict/*", "{home}", "/")), file=FILE)

    assert validated.permissions[0].paths == ("/usr/share/dict/*", "{home}", "/")  # type: ignore[union-attr]


def test_hosts_are_host_port_pairs_with_a_real_port() -> None:
    connect = {"type": "net.connect", "reason": "Fetches the rates.", "hosts": []}
    for host in (
        "example.com",
        "example.com:70000",
        "example.com:\uff14\uff14\uff13",
        "https://example.com:443",
    ):
        (message,) = problems(manifest({**connect, "hosts": [host]})).values()
        assert message == f"'{host}' is not a host:port pair"


def test_sizes_are_bounded_and_the_error_says_the_limit() -> None:
    too_many = problems(manifest(reads(*(f"/srv/{n}" for n in range(MAX_SCOPES + 1)))))
    too_long = problems(manifest(reads("{data}", reason="x" * (MAX_REASON_LENGTH + 1))))
    too_much = problems(manifest(*[reads("{data}")] * 65))
    long_name = problems(manifest(name="n" * 81))

    assert too_many == {
        f"{FILE}: permissions[0].fs.read.paths": "Tuple should have at most 64 items after validation, not 65"
    }
    assert too_long == {f"{FILE}: permissions[0].fs.read.reason": "String should have at most 500 characters"}
    assert too_much == {f"{FILE}: permissions": "Tuple should have at most 64 items after validation, not 65"}
    assert long_name == {f"{FILE}: name": "String should have at most 80 characters"}


def test_an_id_with_a_look_alike_letter_is_refused() -> None:
    with pytest.raises(ManifestError) as refused:
        validate_manifest(manifest(id="\u0430cme.reach"), file=FILE)  # a Cyrillic a

    (problem,) = refused.value.problems
    location, message = problem.location, problem.message
    assert location == f"{FILE}: id"
    assert "U+0430 CYRILLIC SMALL LETTER A" in message
    assert "an id is written in a-z, 0-9, '-', '_' and '.'" in message


def test_text_that_reorders_or_breaks_lines_is_refused_in_names_summaries_and_reasons() -> None:
    override = "Reads your tables \u202egnp.exe"
    found = problems(
        manifest(
            reads("{data}", reason=override), name="Reach\n  - fs.read {data}: granted", summary="ok\u2066"
        )
    )

    assert set(found) == {
        f"{FILE}: permissions[0].fs.read.reason",
        f"{FILE}: name",
        f"{FILE}: summary",
    }
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in found[f"{FILE}: permissions[0].fs.read.reason"]
    assert "U+000A CONTROL CHARACTER" in found[f"{FILE}: name"]
    assert "U+2066 LEFT-TO-RIGHT ISOLATE" in found[f"{FILE}: summary"]


# What consent shows


@pytest.fixture
def person(tmp_path: Path) -> Path:
    """A home folder holding Symphony's own folder, as the platform's default puts it there."""
    home = tmp_path / "person"
    (home / ".local" / "share" / "symphony").mkdir(parents=True)
    return home


def consent(person: Path, *permissions: dict[str, Any], name: str = "Reach", **granted: Any) -> Consent:
    """Evaluate consent of version 1.0 of the test extension on a real state file under ``person``."""
    symphony = Home(person / ".local" / "share" / "symphony")
    with HostState(symphony.state_file) as state:
        if granted:
            state.grant(EXTENSION, "1.0", granted["permissions"], actor="alice", distribution="acme-reach")
        return evaluate(
            state,
            HostPolicy(),
            extension=EXTENSION,
            version="1.0",
            distribution="acme-reach",
            requested=permissions,
            roots=Roots.of(symphony, EXTENSION, home=person),
            name=name,
        )


def notes(result: Consent, permission: str) -> dict[str, str]:
    """``code: severity`` of each note about the scope described as ``permission``."""
    (reach,) = [item for item in result.reach if f"{item.permission} {item.scope}" == permission]
    return {note.code: note.severity for note in reach.notes}


def test_a_grant_over_the_home_folder_says_it_covers_symphonys_own_state(person: Path) -> None:
    result = consent(person, reads("{home}/**", reason="Indexes your documents."))

    (reach,) = result.reach
    assert (reach.path, reach.opens) == (f"{person}/**", str(person))
    assert notes(result, "fs.read {home}/**") == {"home": "danger", "symphony-home": "danger"}
    message = reach.notes[1].message
    assert str(person / ".local" / "share" / "symphony") in message
    assert "the guard keeps it out, the isolated tier cannot" in message
    assert result.new == (("fs.read", "{home}/**"),)  # a person may still say yes to reading


def test_writing_symphonys_own_state_is_refused_even_when_granted_before(person: Path) -> None:
    writes = {"type": "fs.write", "paths": ["{home}", "{data}"], "reason": "Keeps its index."}

    result = consent(person, writes, permissions=[writes])

    assert result.refused[0][0] == ("fs.write", "{home}")
    assert result.refused[0][1].code == "symphony-home"
    assert "cannot be granted" in result.refused[0][1].message
    assert not result.satisfied
    assert notes(result, "fs.write {data}") == {}  # its own folder is what it may write
    summary = json.loads(json.dumps(result.as_json()))
    assert summary["refused"] == [
        {
            "permission": "fs.write {home}",
            "code": "symphony-home",
            "severity": "refused",
            "message": result.refused[0][1].message,
        }
    ]


def test_the_root_folder_is_every_file_on_this_machine(person: Path) -> None:
    result = consent(person, reads("/**", "/usr/share/dict/*"))

    assert notes(result, "fs.read /**")["everything"] == "danger"
    assert result.reach[0].notes[0].message == "every file on this machine"
    assert notes(result, "fs.read /usr/share/dict/*") == {"outside": "info", "glob-widened": "info"}
    assert result.reach[1].opens == "/usr/share/dict"


def test_a_glob_says_which_folder_the_kernel_opens(person: Path) -> None:
    result = consent(person, reads("{data}/tables/*.csv"))

    (reach,) = result.reach
    data = own_folder(person / ".local" / "share" / "symphony" / "extensions" / EXTENSION / "data")
    assert (reach.path, reach.opens) == (f"{data}/tables/*.csv", f"{data}/tables")
    assert [note.code for note in reach.notes] == ["glob-widened"]
    assert f"the isolated tier opens all of {data}/tables" in reach.notes[0].message


def test_programs_and_ports_say_what_any_means_and_how_the_isolated_tier_enforces_them(person: Path) -> None:
    result = consent(
        person,
        {"type": "subprocess", "commands": ["*"], "reason": "Runs your tools."},
        {"type": "net.connect", "hosts": ["api.example.com:*", "db.example.com:5432"], "reason": "Syncs."},
    )

    assert notes(result, "subprocess *") == {"any-program": "danger"}
    (program,) = [item for item in result.reach if item.permission == "subprocess"]
    assert program.notes[0].message == (
        "any program on this machine; in the isolated tier, programs it starts are confined like the "
        "extension itself, and only those in /usr/local/bin, /usr/bin, /bin, /usr/sbin, /sbin can start "
        "(it may read them)"
    )
    assert notes(result, "net.connect api.example.com:*") == {"any-port": "warning", "by-port": "info"}
    by_port = {
        item.scope: item.notes[-1].message for item in result.reach if item.permission == "net.connect"
    }
    assert by_port["db.example.com:5432"] == (
        "the isolated tier enforces ports, not addresses: connecting to TCP port 5432 at any address; "
        "UDP is not restricted by port"
    )


def test_a_mixed_script_name_and_invisible_characters_are_flagged_not_refused(person: Path) -> None:
    name = "\u0410cme Digits"  # a Cyrillic A, then Latin
    request = reads("{data}", reason="Reads\u200b your tables.")
    validate_manifest(manifest(request, name=name), file=FILE)  # legal: some names mix scripts

    result = consent(person, request, name=name)

    flagged = {(warning.field, warning.code): warning.message for warning in result.warnings}
    assert set(flagged) == {("name", "mixed-scripts"), ("permissions[0].reason", "invisible")}
    assert "mixes Cyrillic and Latin letters" in flagged[("name", "mixed-scripts")]
    assert "U+0410 CYRILLIC CAPITAL LETTER A" in flagged[("name", "mixed-scripts")]
    assert "U+200B ZERO WIDTH SPACE" in flagged[("permissions[0].reason", "invisible")]
    japanese = consent(person, request, name="数字 Digits かな")  # scripts written together in Japanese
    assert [warning.field for warning in japanese.warnings] == ["permissions[0].reason"]
