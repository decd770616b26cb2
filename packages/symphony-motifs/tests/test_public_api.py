import symphony_motifs
from symphony_motifs import Motif


def test_every_exported_name_resolves():
    for name in symphony_motifs.__all__:
        assert getattr(symphony_motifs, name) is not None, name


def test_a_motif_exposes_nothing_unless_it_says_so():
    class Plain(Motif):
        pass

    class Chart(Motif):
        exposed = ("refresh",)

    assert Plain.exposed == ()
    assert Chart.exposed == ("refresh",)
    assert Chart.kind == "motif"
