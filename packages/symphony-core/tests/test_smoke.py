import symphony_core


def test_imports():
    assert symphony_core.__version__
