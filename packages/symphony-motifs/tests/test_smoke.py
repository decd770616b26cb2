import symphony_motifs


def test_imports():
    assert symphony_motifs.__version__
