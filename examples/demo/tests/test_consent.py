"""The demo's consent rule: only an extension's own folders are granted; a type is granted whole or not at all."""

from __future__ import annotations

from symphony_demo._consent import decide


def test_file_access_inside_its_own_folders_is_granted():
    decisions = decide(
        "acme.ok",
        [
            {"type": "fs.read", "paths": ["{data}/weather.csv"], "reason": "the weather table"},
            {"type": "fs.write", "paths": ["{cache}/out/*.parquet"], "reason": "its results"},
        ],
    )

    assert [(d.describe(), d.granted) for d in decisions] == [
        ("fs.read {data}/weather.csv", True),
        ("fs.write {cache}/out/*.parquet", True),
    ]


def test_anything_beyond_its_own_folders_is_refused_with_the_reason():
    decisions = decide(
        "acme.greedy",
        [
            {"type": "fs.read", "paths": ["{data}/*", "{home}/.ssh/*"], "reason": "keys"},
            {"type": "fs.read", "paths": ["{data}/settings.toml"], "reason": "settings"},
            {"type": "fs.read", "paths": ["{data}/../../state.db"], "reason": "escape"},
            {"type": "net.connect", "hosts": ["telemetry.example.com:443"], "reason": "stats"},
            {"type": "env", "names": ["AWS_SECRET_ACCESS_KEY"], "reason": "bucket"},
        ],
    )
    why = {d.describe(): (d.granted, d.why) for d in decisions}

    assert why["fs.read {data}/*, {home}/.ssh/*"] == (False, "{home}/.ssh/* is outside its own folders")
    assert why["fs.read {data}/settings.toml"][0] is False  # granting a type grants all of its requests
    assert "another fs.read request" in why["fs.read {data}/settings.toml"][1]
    assert why["fs.read {data}/../../state.db"] == (False, "{data}/../../state.db is outside its own folders")
    assert why["net.connect telemetry.example.com:443"][0] is False
    assert why["env AWS_SECRET_ACCESS_KEY"] == (False, "environment variables can hold secrets")
