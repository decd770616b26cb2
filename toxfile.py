"""tox's hook for the test cells and the compatibility cells (tox.toml; tools/release/cells.py).

Before tox installs the test tools of a cell that runs a package's tests, the hook checks they are the ones
hatch.toml's `hatch-test` cell of that package installs, so hatch and tox test with the same tools.

In a compatibility cell (label `compat`) the release tools then pick the core the cell names (reading the
release tags), build it, and install it with the package under test at the cell's resolution. tox then
adds the test tools under constraints that keep what the cell resolved, runs the tests and reports. A cell
that cannot run (a package never released has no release to test) is reported as skipped, with the reason.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

from tox.plugin import impl
from tox.tox_env.api import ToxEnv
from tox.tox_env.errors import Fail, Skip

ROOT = Path(__file__).resolve().parent
PACKAGE_CELL = re.compile(
    r"py3\d+-(?P<a>core|instruments|operators|motifs)"
    r"|(?P<b>instruments|operators|motifs)-(oldest|newest)-core"
    r"|core-with-(?P<c>instruments|operators|motifs)-release"
    r"|(?P<d>scale)"
)


@impl
def tox_on_install(tox_env: ToxEnv, arguments: Any, section: str, of_type: str) -> None:
    """Check a package cell's test tools; install a compatibility cell's package and core before them."""
    match = PACKAGE_CELL.fullmatch(tox_env.name)
    if of_type != "deps" or match is None:
        return
    tools = str(ROOT / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    from release.cells import compare_test_dependencies, find_cell, install_cell
    from release.errors import ReleaseError

    short = match["a"] or match["b"] or match["c"] or match["d"]
    drift = compare_test_dependencies(ROOT, short, tox_env.conf["deps"].lines())
    if drift is not None:
        raise Fail(drift)
    if "compat" not in tox_env.conf["labels"]:
        return

    uv = getattr(tox_env, "uv", None)
    if uv is None:
        raise Fail("the compatibility cells need tox-uv (tox.toml's `requires` brings it)")
    try:
        cell = find_cell(ROOT, tox_env.name)
        if cell.skip is not None:
            raise Skip(cell.skip)
        report = install_cell(ROOT, cell, [uv], Path(tox_env.env_python()), Path(tox_env.env_dir))
    except ReleaseError as error:
        raise Fail(str(error)) from None
    logging.warning(
        "%s with core %s, %s: %s",
        report["package"],
        report["core"],
        report["resolution"],
        report["resolved"],
    )
