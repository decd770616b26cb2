import symphony_operators


def test_imports():
    assert symphony_operators.__version__
