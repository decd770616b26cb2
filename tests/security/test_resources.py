"""Attacks on shared resources the kernel does not hold by itself: the disk."""

from __future__ import annotations

import pytest

GIB = 1 << 30
TOTAL = 8 * GIB
"""Four times the default quota (2 GiB): the host counts the folders every 0.5 s, and a worker writing to
the page cache can put a few GiB on disk between two counts, so a smaller goal can be reached before the
count that stops it (the guide says so: the quota is checked from outside, not at each write)."""


@pytest.mark.parametrize("files", [1, 8], ids=["one file", "eight files"])
def test_filling_the_disk_through_the_cache_folder_is_stopped(scene, steps, files) -> None:
    ext = "hostile.disk"

    outcome = scene.run(
        [steps.call(ext, "fill", TOTAL, files, label="fill")],
        setup=steps.start(ext),
        attackers=[ext],
        call_budget=120.0,
        timeout=240,
    )

    on_disk = sum(path.stat().st_blocks * 512 for path in scene.cache(ext).glob("fill-*.bin"))
    fill = outcome.step("fill")
    written = fill["value"]["written"] if fill["ok"] else None
    assert written is None or written < TOTAL, f"all {TOTAL:,} bytes were written\n{outcome.describe()}"
    assert on_disk < TOTAL, f"{on_disk:,} bytes are on disk in its cache\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()
