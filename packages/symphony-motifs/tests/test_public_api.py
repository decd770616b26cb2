import pytest

import symphony_motifs
from symphony_motifs import Motif, MotifError, read_contributions


def test_every_exported_name_is_the_cores_own_object_or_defined_in_this_package() -> None:
    import symphony_core

    assert len(set(symphony_motifs.__all__)) == len(symphony_motifs.__all__)
    own = []
    for name in symphony_motifs.__all__:
        value = getattr(symphony_motifs, name)
        if name == "__version__":
            assert isinstance(value, str), value
            assert value[0].isdigit(), value
        elif name in symphony_core.__all__:
            assert value is getattr(symphony_core, name), f"{name} shadows the core's {name}"
        elif isinstance(value, type) or (callable(value) and hasattr(value, "__code__")):
            assert value.__module__ == "symphony_motifs", name
            assert value.__doc__, f"{name} has no docstring"
            own.append(name)
    assert {
        "Motif",
        "Contributions",
        "read_contributions",
        "MotifServer",
        "serve",
        "open_window",
        "MotifError",
    } <= set(own)
    assert symphony_motifs.MARKETPLACE == "symphony.marketplace"


def test_a_motif_exposes_only_what_its_manifest_lists() -> None:
    spec = read_contributions({"contributes": {"page": "web/index.html"}}, extension="acme.plain")
    assert (spec.exposed, spec.events) == ((), ())
    spec = read_contributions(
        {"contributes": {"page": "web/app.html", "exposed": ["refresh"], "events": ["tick"]}},
        extension="acme.c",
    )
    assert (spec.page, spec.exposed, spec.events) == ("web/app.html", ("refresh",), ("tick",))
    assert Motif.kind == "motif"


@pytest.mark.parametrize(
    ("contributes", "complaint"),
    [
        ({}, "contributes.page: Field required"),
        ({"page": "../outside.html"}, "must be a relative path inside the package"),
        ({"page": "/etc/passwd.html"}, "must be a relative path inside the package"),
        ({"page": "web/app.js"}, "must be an HTML file"),
        ({"page": "web/index.html", "exposed": ["_private"]}, "'_private' is not a public method name"),
        ({"page": "web/index.html", "exposed": ["activate"]}, "'activate' belongs to the motif's lifecycle"),
        ({"page": "web/index.html", "exposed": ["invoke"]}, "'invoke' belongs to the motif's lifecycle"),
        ({"page": "web/index.html", "events": ["no spaces"]}, "'no spaces' is not an event name"),
        ({"page": "web/index.html", "script": "x.js"}, "contributes.script: Extra inputs are not permitted"),
        (
            {"page": "web/index.html", "width": 10},
            "contributes.width: Input should be greater than or equal to 200",
        ),
    ],
)
def test_a_bad_contributes_table_names_the_file_and_the_field(contributes: dict, complaint: str) -> None:
    with pytest.raises(MotifError) as caught:
        read_contributions({"contributes": contributes}, extension="acme.bad", file="src/acme/symphony.toml")
    assert caught.value.extension == "acme.bad"
    assert "src/acme/symphony.toml: contributes." in str(caught.value)
    assert complaint in str(caught.value)
    assert caught.value.hint


def test_a_motif_that_is_not_active_says_how_to_start_it() -> None:
    class Chart(Motif):
        pass

    with pytest.raises(MotifError, match="Chart is not active") as caught:
        Chart().invoke("refresh", {})
    assert caught.value.hint is not None
    assert "Chart.create(" in caught.value.hint
