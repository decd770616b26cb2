"""Consent and config on real installed distributions: grants per version, upgrades, policy, secrets."""

from __future__ import annotations

import json
import os

READS_DATA = """
[[permissions]]
type = "fs.read"
paths = ["{data}/*.csv"]
reason = "Read the tables you put in the extension's data folder."
"""
CALLS_API = """
[[permissions]]
type = "net.connect"
hosts = ["api.example.com:443"]
reason = "Fetch the weather for your airports."
"""


def _asking(make, ext_id, permissions, *, version="1.0.0", name=None):
    project = make.extension(
        ext_id, code=make.GREETER, name=name, manifest_text=make.manifest(ext_id, extra=permissions)
    )
    return make.Project(project.name, project.files, project.entry_points, version=version)


def test_an_extension_does_not_run_until_a_person_grants_what_it_asks_for(install, make, home, hosts, venv):
    install(_asking(make, "acme.reader", READS_DATA))
    host = hosts(home)

    refused = host.refuses("start", "acme.reader")
    assert refused["error"] == "ConsentRequired"
    assert "fs.read {data}/*.csv" in refused["message"]
    assert "symphony grant acme.reader" in refused["hint"]
    assert host.info("acme.reader")["state"] == "configured"  # waiting for consent, not broken
    host.close()

    summary = venv.symphony_json(home, "permissions", "acme.reader")
    assert summary["needs_consent"] == ["fs.read {data}/*.csv"]
    assert summary["satisfied"] is False

    without_terminal = venv.symphony(home, "grant", "acme.reader")
    assert without_terminal.returncode == 1
    assert "pass --yes" in make.normalize(without_terminal.stderr)

    granted = venv.symphony_json(home, "grant", "acme.reader", "--yes")
    assert granted["satisfied"] is True
    assert granted["granted_version"] == "1.0.0"

    # A new host process: the grant survived the restart and the extension runs.
    host = hosts(home)
    host("start", "acme.reader")
    assert host("call", "acme.reader", "greet", "ada") == "hello ada, from acme.reader"
    audit = host("audit", "acme.reader")
    assert ["granted", {"version": "1.0.0", "permissions": [_read_permission()]}] in audit


def _read_permission():
    return {
        "type": "fs.read",
        "paths": ["{data}/*.csv"],
        "reason": "Read the tables you put in the extension's data folder.",
    }


def test_an_upgrade_that_asks_for_more_waits_for_consent_to_exactly_what_is_new(
    install, make, home, hosts, venv
):
    install(_asking(make, "acme.weather", READS_DATA))
    venv.symphony_json(home, "grant", "acme.weather", "--yes")

    install(_asking(make, "acme.weather", READS_DATA + CALLS_API, version="2.0.0"))
    inspected = venv.symphony_json(home, "inspect", "acme.weather")
    assert inspected["version"] == "2.0.0"
    assert inspected["consent"]["previous_version"] == "1.0.0"
    assert inspected["consent"]["needs_consent"] == ["net.connect api.example.com:443"]
    readable = make.normalize(venv.symphony(home, "permissions", "acme.weather").stdout)
    assert "NEW since 1.0.0" in readable
    assert "granted to 1.0.0, carries over" in readable

    host = hosts(home)
    refused = host.refuses("start", "acme.weather")
    assert refused["error"] == "ConsentRequired"
    assert "new since version 1.0.0" in refused["message"]
    assert "net.connect api.example.com:443" in refused["message"]
    assert "fs.read" not in refused["message"]
    host.close()

    # Unattended, only what stays in its own folders is granted: the network needs naming (or --all).
    unattended = venv.symphony_json(home, "grant", "acme.weather", "--yes")
    assert (unattended["satisfied"], unattended["needs_consent"]) == (
        False,
        ["net.connect api.example.com:443"],
    )
    assert unattended["flagged"] == ["net.connect api.example.com:443"]
    named = venv.symphony_json(home, "grant", "acme.weather", "net.connect api.example.com:443", "--yes")
    assert named["satisfied"] is True
    host = hosts(home)
    host("start", "acme.weather")
    host.close()

    # Asking for less than was granted needs nobody: the grant carries over to the new version.
    install(_asking(make, "acme.weather", READS_DATA, version="3.0.0"))
    host = hosts(home)
    host("start", "acme.weather")
    assert ["granted", {"version": "3.0.0", "permissions": [_read_permission()]}] in host(
        "audit", "acme.weather"
    )
    host.close()
    assert venv.symphony_json(home, "permissions", "acme.weather")["granted_version"] == "3.0.0"


REACHES_EVERYWHERE = """
[[permissions]]
type = "fs.read"
paths = ["/**", "{data}/*.csv"]
reason = "Indexes every file."

[[permissions]]
type = "fs.write"
paths = ["/"]
reason = "Tidies every file."

[[permissions]]
type = "subprocess"
reason = "Runs your tools."
"""


def test_the_summary_says_what_each_grant_reaches_and_refuses_what_no_one_may_grant(
    install, make, home, hosts, venv
):
    ext_id = "acme.everywhere"
    name = "\u0410cme Everywhere"  # its first letter is Cyrillic
    text = make.manifest(ext_id, extra=REACHES_EVERYWHERE, name=name)
    install(make.extension(ext_id, code=make.GREETER, manifest_text=text))

    summary = venv.symphony_json(home, "permissions", ext_id)
    reach = {item["permission"] + " " + item["scope"]: item for item in summary["reach"]}
    assert {note["code"] for note in reach["fs.read /**"]["notes"]} == {"everything", "symphony-home"}
    assert reach["fs.read {data}/*.csv"]["opens"] == str(home / "extensions" / ext_id / "data")
    assert [note["code"] for note in reach["subprocess *"]["notes"]] == ["any-program"]
    assert [(item["permission"], item["code"]) for item in summary["refused"]] == [
        ("fs.write /", "symphony-home")
    ]
    assert "fs.write /" not in summary["needs_consent"]
    assert [(item["field"], item["code"]) for item in summary["warnings"]] == [("name", "mixed-scripts")]

    readable = make.normalize(venv.symphony(home, "permissions", ext_id).stdout)
    assert "look twice: name mixes Cyrillic and Latin letters" in readable
    assert "fs.read /**: Indexes every file. needs consent, flagged ! every file on this machine" in readable
    assert "fs.write /: Tidies every file. refused: no one can grant it" in readable
    assert (
        "subprocess *: Runs your tools. needs consent, flagged ! any program on this machine; in the isolated tier, "
        "programs it starts are confined like the extension itself"
    ) in readable
    assert f"- the isolated tier opens all of {home / 'extensions' / ext_id / 'data'}" in readable

    # No one can say yes to it, and without it the extension does not run.
    granting = venv.symphony(home, "grant", ext_id, "--all", "--yes")
    assert granting.returncode != 0
    assert "cannot be granted by anyone: fs.write / (covers Symphony's own state" in make.normalize(
        granting.stderr
    )
    assert venv.symphony_json(home, "grant", ext_id, "fs.read", "subprocess", "--yes")["satisfied"] is False
    refused = hosts(home).refuses("start", ext_id)
    assert refused["error"] == "ConsentRequired"
    assert "fs.write / (refused: covers Symphony's own state" in refused["message"]


def test_revoking_stops_the_extension_and_it_asks_again(install, make, home, hosts, venv):
    install(_asking(make, "acme.revoked", READS_DATA))
    venv.symphony_json(home, "grant", "acme.revoked", "--yes")
    assert venv.symphony(home, "revoke", "acme.revoked").returncode == 0

    host = hosts(home)
    assert host.refuses("start", "acme.revoked")["error"] == "ConsentRequired"


def test_the_host_policy_decides_unattended_however_names_are_spelled(install, make, home, hosts, venv):
    install(
        _asking(make, "acme.allowed", READS_DATA),
        _asking(make, "acme.blocked", READS_DATA, name="Acme_Blocked"),
    )
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text(
        '[[rules]]\naction = "allow"\npublisher = "ACME"\npermission = "fs.read"\n\n'
        '[[rules]]\naction = "deny"\ndistribution = "acme.BLOCKED"\n',
        encoding="utf-8",
    )
    host = hosts(home)

    host("start", "acme.allowed")
    assert ["granted", {"version": "1.0.0", "permissions": [_read_permission()]}] in host(
        "audit", "acme.allowed"
    )
    refused = host.refuses("start", "acme.blocked")
    assert refused["error"] == "ConsentRequired"
    assert "denied by policy rule 2" in refused["message"]
    host.close()

    # A person's grant does not override a deny rule.
    venv.symphony_json(home, "grant", "acme.blocked", "--yes")
    host = hosts(home)
    assert "denied by policy rule 2" in host.refuses("start", "acme.blocked")["message"]


def test_a_bad_policy_file_is_reported_with_the_field(install, make, home, venv):
    install(_asking(make, "acme.policed", READS_DATA))
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text('[[rules]]\naction = "maybe"\npublisher = "acme"\n', encoding="utf-8")

    result = venv.symphony(home, "permissions", "acme.policed")

    assert result.returncode == 1
    message = make.normalize(result.stderr)
    assert "invalid policy file" in message
    assert "rules.0.action" in message


CONFIGURED = """
from pydantic import Field, SecretStr
from symphony_core import Config, Extension


class WeatherConfig(Config):
    threshold: float = Field(0.5, ge=0, le=1, description="Alert above this.")
    api_key: SecretStr | None = Field(None, description="Key for the weather service.")


class Ext(Extension):
    def settings(self):
        key = self.context.config.api_key
        return {"threshold": self.context.config.threshold, "has_key": key is not None}
"""


def test_config_reaches_the_extension_and_its_secret_never_shows(install, make, home, hosts, venv):
    ext_id = "acme.configured"
    text = make.manifest(ext_id, config="acme_configured:WeatherConfig")
    install(make.extension(ext_id, code=CONFIGURED, manifest_text=text))
    secret = "sk-live-7f3a9c1e5b"

    assert venv.symphony(home, "config", "set", ext_id, "threshold", "0.8").returncode == 0
    assert venv.symphony(home, "config", "set", ext_id, "api_key", secret).returncode == 0
    bad = venv.symphony(home, "config", "set", ext_id, "threshold", "7")
    assert bad.returncode == 1
    assert "threshold" in bad.stderr
    assert "less than or equal to 1" in make.normalize(bad.stderr)

    shown = venv.symphony_json(home, "config", "show", ext_id)
    assert shown["config"] == {"threshold": 0.8, "api_key": "**********"}
    assert shown["sources"]["threshold"].startswith("override")
    schema_text = venv.symphony(home, "config", "schema", ext_id).stdout
    schema = json.loads(schema_text)
    assert schema["properties"]["threshold"]["maximum"] == 1

    host = hosts(home)
    host("start", ext_id)
    assert host("call", ext_id, "settings") == {"threshold": 0.8, "has_key": True}
    audit = json.dumps(host("audit", ext_id))
    stderr = host.close()

    readable = venv.symphony(home, "config", "show", ext_id).stdout
    for text in (json.dumps(shown), schema_text, audit, stderr, readable, bad.stderr, bad.stdout):
        assert secret not in text
        assert secret[:8] not in text


def test_an_invalid_config_keeps_the_extension_inactive_and_names_the_source(
    install, make, home, hosts, venv
):
    ext_id = "acme.misconfigured"
    text = make.manifest(ext_id, config="acme_misconfigured:WeatherConfig")
    install(make.extension(ext_id, code=CONFIGURED, manifest_text=text))
    config_file = home / "config" / f"{ext_id}.toml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text("threshold = 3\n", encoding="utf-8")

    host = hosts(home)
    refused = host.refuses("start", ext_id)

    assert refused["error"] == "ConfigError"
    assert "threshold" in refused["message"]
    assert str(config_file) in refused["message"]
    assert host.info(ext_id)["state"] == "failed"
    host.close()

    config_file.write_text("threshold = 0.3\n", encoding="utf-8")
    host = hosts(home)
    host("start", ext_id)
    assert host("call", ext_id, "settings") == {"threshold": 0.3, "has_key": False}


GUARDED = """
from symphony_core import Extension


class Ext(Extension):
    def read(self, path):
        with open(path) as handle:
            return handle.read()

    def data_dir(self):
        return str(self.context.data_dir)
"""


def test_the_host_runs_extension_code_under_the_guard_and_audits_denials(
    install, make, home, hosts, tmp_path
):
    ext_id = "acme.guarded"
    install(make.extension(ext_id, code=GUARDED, manifest_text=make.manifest(ext_id, extra=READS_DATA)))
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours", encoding="utf-8")
    host = hosts(home, isolation="guard")
    host("grant", ext_id)
    host("start", ext_id)
    data_dir = host("call", ext_id, "data_dir")
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "flights.csv"), "w", encoding="utf-8") as handle:
        handle.write("origin,dest\nJFK,LAX\n")

    assert host("call", ext_id, "read", os.path.join(data_dir, "flights.csv")).startswith("origin,dest")
    refused = host.refuses("call", ext_id, "read", str(outside))

    assert refused["error"] == "GuardDenied"
    assert "fs.read" in refused["message"]
    assert str(outside) in refused["message"]
    assert "not a sandbox" in refused["message"]
    assert ["permission_denied", {"permission": "fs.read", "resource": str(outside)}] in host("audit", ext_id)


def test_an_unguarded_host_runs_extension_code_in_process_with_no_checks(
    install, make, home, hosts, tmp_path
):
    ext_id = "acme.unguarded"
    install(make.extension(ext_id, code=GUARDED, manifest_text=make.manifest(ext_id, extra=READS_DATA)))
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours", encoding="utf-8")
    host = hosts(home, isolation="none")
    host("grant", ext_id)

    assert host("start", ext_id) == "Ext"
    assert host("call", ext_id, "read", str(outside)) == "not yours"
    assert host.info(ext_id)["tier"] == "none"
    assert "permission_denied" not in [event for event, _ in host("audit", ext_id)]


# The deprecated `guard` argument, with each isolation: what the host does, and what Python warned.
DEPRECATED_GUARD = r"""
import json, sys, warnings
from symphony_core import Host

found = {}
for isolation in ("guard", "auto", "isolated", "none"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        host = Host(sys.argv[1], isolation=isolation, guard=False)
        unguarded = not host.guard
    host.close()
    found[isolation] = [host.isolation, unguarded, [(w.category.__name__, w.filename) for w in caught]]
print(json.dumps(found))
"""


def test_the_deprecated_guard_false_turns_only_the_guard_tier_into_none_and_warns(venv, home):
    ran = venv.run(venv.python, "-c", DEPRECATED_GUARD, home)

    found = json.loads(ran.stdout)
    assert {isolation: found[isolation][:2] for isolation in found} == {
        "guard": ["none", True],
        "auto": ["auto", False],  # never less protection than the isolation asked for
        "isolated": ["isolated", False],
        "none": ["none", True],
    }
    for _, _, warned in found.values():
        assert warned == [["DeprecationWarning", "<string>"]] * 2, "Host(guard=...), then Host.guard"


LEARNER = """
from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        super().activate(context)
        (context.data_dir / "model.bin").write_bytes(b"weights")

    def warm_up(self):
        return (self.context.data_dir / "model.bin").read_bytes().decode()
"""


def test_learning_mode_proposes_the_permissions_an_extension_uses(install, make, home, venv):
    install(make.extension("acme.learner", code=LEARNER))

    result = venv.symphony(home, "learn", "acme.learner", "--call", "warm_up", "--json")

    assert result.returncode == 0, result.stderr
    proposal = {item["type"]: item for item in json.loads(result.stdout)}
    assert proposal["fs.read"]["paths"] == ["{data}"]
    assert proposal["fs.write"]["paths"] == ["{data}"]
    readable = venv.symphony(home, "learn", "acme.learner").stdout
    assert "[[permissions]]" in readable
    assert 'type = "fs.write"' in readable
