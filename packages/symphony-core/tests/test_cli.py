"""The ``symphony`` command as a person or a script uses it, run inside the test environment."""

from __future__ import annotations

import pytest

HEALTHY = "acme.cli"
BROKEN = "acme.cli-broken"
ODD = "acme.cli-odd"
LIST_KEYS = {
    "id",
    "kind",
    "state",
    "enabled",
    "distribution",
    "version",
    "name",
    "summary",
    "entry_point",
    "manifest_file",
    "manifest",
    "tier",
    "distribution_sha256",
    "environment",
    "problem",
    "schema",
}


@pytest.fixture(scope="module", autouse=True)
def installed(venv, make, tmp_path_factory):
    """A healthy extension, one registered under the wrong kind, and one whose texts look like markup."""
    projects = [
        make.greeter(HEALTHY),
        make.greeter(
            BROKEN,
            manifest_text=make.manifest(BROKEN, kind="instrument", targets="symphony-instruments>=0.1"),
        ),
        make.greeter(
            ODD, manifest_text=make.manifest(ODD, name="Odd [/] name", summary="Sums [bold]x[/bold].")
        ),
    ]
    venv.install(tmp_path_factory.mktemp("cli"), *projects)
    yield
    venv.uninstall(*[project.name for project in projects])


def test_list_json_describes_every_extension_with_a_stable_shape(venv, home, make):
    infos = venv.symphony_json(home, "list")

    assert all(set(info) == LIST_KEYS for info in infos)
    healthy, broken = make.by_id(infos)[HEALTHY], make.by_id(infos)[BROKEN]
    assert {
        key: healthy[key] for key in ("kind", "state", "enabled", "distribution", "version", "entry_point")
    } == {
        "kind": "motif",
        "state": "validated",
        "enabled": True,
        "distribution": "acme-cli",
        "version": "1.0.0",
        "entry_point": "acme_cli:Ext",
    }
    assert healthy["problem"] is None
    assert healthy["manifest"]["targets"] == make.TARGETS
    assert broken["state"] == "failed"
    assert set(broken["problem"]) == {"code", "message", "hint"}
    assert broken["problem"]["code"] == "manifest"
    assert (
        "kind is 'instrument' but the entry point is in group 'symphony.motifs'"
        in broken["problem"]["message"]
    )


def test_inspect_json_gives_the_same_record_as_list(venv, home, make):
    listed = make.by_id(venv.symphony_json(home, "list"))

    for ext_id in (HEALTHY, BROKEN):
        inspected = venv.symphony_json(home, "inspect", ext_id)
        assert {key: inspected[key] for key in LIST_KEYS} == listed[ext_id]


@pytest.mark.parametrize("command", ["inspect", "enable", "disable"])
def test_an_unknown_id_exits_1_with_the_reason_on_stderr(venv, home, make, command):
    result = venv.symphony(home, command, "acme.nowhere")

    assert result.returncode == 1
    assert result.stdout == ""
    error = make.normalize(result.stderr)
    assert "error: acme.nowhere: no installed extension has this id" in error
    assert "hint: `symphony list` shows the installed extensions" in error
    assert "Traceback" not in result.stderr


def test_an_unknown_id_that_looks_like_markup_is_still_reported(venv, home, make):
    result = venv.symphony(home, "inspect", "[/oops]")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "[/oops]: no installed extension has this id" in make.normalize(result.stderr)


def test_doctor_json_says_the_guard_is_not_a_sandbox(venv, home):
    report = venv.symphony_json(home, "doctor")

    assert "not a sandbox" in report["enforcement"]["guard"]
    assert "native code" in report["enforcement"]["guard"]
    packages = report["packages"]
    assert (
        packages["symphony-sdk-core"]
        == packages["symphony-motifs"]
        == packages["symphony-operators"]
        == "0.1.0"
    )
    assert report["home"] == str(home)
    assert report["extensions"]["total"] >= 3
    assert report["extensions"]["failed"] >= 1


def test_disable_and_enable_on_the_command_line_are_remembered(venv, home, make):
    disabled = venv.symphony(home, "disable", HEALTHY)
    assert (disabled.returncode, disabled.stdout.strip()) == (0, f"disabled {HEALTHY}")
    assert make.by_id(venv.symphony_json(home, "list"))[HEALTHY]["enabled"] is False
    assert venv.symphony_json(home, "inspect", HEALTHY)["enabled"] is False

    enabled = venv.symphony(home, "enable", HEALTHY)
    assert (enabled.returncode, enabled.stdout.strip()) == (0, f"enabled {HEALTHY}")
    assert make.by_id(venv.symphony_json(home, "list"))[HEALTHY]["enabled"] is True


def test_list_and_inspect_for_people_show_texts_exactly_as_written(venv, home, make):
    table = venv.symphony(home, "list")
    broken = venv.symphony(home, "inspect", BROKEN)
    odd = venv.symphony(home, "inspect", ODD)

    assert table.returncode == broken.returncode == odd.returncode == 0, (
        table.stderr + broken.stderr + odd.stderr
    )
    assert HEALTHY in table.stdout
    assert "failed" in table.stdout
    assert "what to do: register it under [symphony.instruments] or fix `kind`" in make.normalize(
        broken.stdout
    )
    assert "Odd [/] name" in odd.stdout
    assert "Sums [bold]x[/bold]." in odd.stdout


COMMANDS = "symphony.commands"


def _command_project(make, name, files, entry_points):
    return make.Project(name=name, files=files, entry_points=entry_points, group=COMMANDS)


def test_other_distributions_add_commands_and_a_broken_one_only_breaks_itself(venv, home, make, tmp_path):
    hello = """
        import click

        @click.command()
        @click.argument("who")
        def hello(who):
            '''Greet someone.'''
            click.echo(f"hello {who}")

        not_a_command = 42
    """
    projects = [
        _command_project(
            make,
            "acme-commands",
            {"acme_commands/__init__.py": hello},
            {
                "hello": "acme_commands:hello",
                "list": "acme_commands:hello",
                "broken": "acme_commands.missing:command",
                "odd": "acme_commands:not_a_command",
                "twice": "acme_commands:hello",
            },
        ),
        _command_project(
            make,
            "acme-commands-too",
            {"acme_commands_too/__init__.py": hello},
            {"twice": "acme_commands_too:hello"},
        ),
    ]
    venv.install(tmp_path, *projects)
    try:
        assert venv.symphony(home, "hello", "ada").stdout == "hello ada\n"

        listed = venv.symphony_json(home, "list")
        assert isinstance(listed, list), "a distribution cannot take over a built-in command"

        helped = venv.symphony(home, "--help").stdout
        assert {"hello", "broken", "list"} <= set(helped.split())

        broken = venv.symphony(home, "broken", "--anything")
        assert broken.returncode == 1
        assert "the command 'broken' from acme-commands 1.0.0 failed to load" in make.normalize(broken.stderr)
        assert "ModuleNotFoundError" in broken.stderr

        odd = venv.symphony(home, "odd")
        assert odd.returncode == 1
        assert "is a int, not a click command" in make.normalize(odd.stderr)

        twice = venv.symphony(home, "twice")
        assert twice.returncode == 1
        assert "acme-commands 1.0.0, acme-commands-too 1.0.0" in make.normalize(twice.stderr)

        assert venv.symphony(home, "nonexistent").returncode == 2
    finally:
        venv.uninstall("acme-commands", "acme-commands-too")
