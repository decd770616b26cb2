"""Fixtures shared by the cross-package tests."""

from __future__ import annotations

import base64
import hashlib
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

Install = Callable[[str, Mapping[str, str], Mapping[str, str]], None]
"""``install(distribution, files, entry_points)``: see `installed`."""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An empty folder to install distributions into, as a ``site-packages`` holds them."""
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


@pytest.fixture
def installed(site: Path) -> Install:
    """Installs a distribution into `site` in the layout an installer leaves: its files (dedented), a
    ``.dist-info`` with METADATA, WHEEL, ``entry_points.txt`` (``{group: "name = module:attr"}`` lines)
    and a RECORD with each file's hash, which is what the host binds grants to."""

    def install(distribution: str, files: Mapping[str, str], entry_points: Mapping[str, str]) -> None:
        info = f"{distribution.replace('-', '_')}-1.0.0.dist-info"
        points = "".join(f"[{group}]\n{lines}\n" for group, lines in entry_points.items())
        content = {
            **files,
            f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0.0\n"
            "Requires-Dist: symphony-operators>=0.1,<0.2\n\n",
            f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            f"{info}/entry_points.txt": points,
        }
        record = []
        for relative, text in content.items():
            data = textwrap.dedent(text).lstrip().encode()
            (site / relative).parent.mkdir(parents=True, exist_ok=True)
            (site / relative).write_bytes(data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{relative},sha256={digest},{len(data)}")
        (site / info / "RECORD").write_text("\n".join([*record, f"{info}/RECORD,,"]) + "\n", encoding="utf-8")

    return install
