import symphony_instruments


def test_imports():
    assert symphony_instruments.__version__
