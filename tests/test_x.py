def test_x():
    import symphony_core
