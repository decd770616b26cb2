"""What every test cell shares: the ``--fuzz`` option of the property-based tests."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz",
        action="store_true",
        help="run the property-based tests (hypothesis) with 100 times as many examples",
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        from hypothesis import settings
    except ImportError:  # a cell without the property-based tests
        return
    # No deadline: a shared 2-core machine makes single examples slow at times, never wrong. The default
    # run is the same on every machine (derandomized), so a test run passes or fails for its code alone;
    # --fuzz draws new examples each time, and what it finds is kept as an explicit @example.
    settings.register_profile("symphony", max_examples=200, deadline=None, derandomize=True, database=None)
    settings.register_profile("symphony-fuzz", max_examples=20_000, deadline=None)
    settings.load_profile("symphony-fuzz" if config.getoption("--fuzz") else "symphony")
