"""Native code bypasses the in-process guard: proven here, where polars and onnxruntime are installed.

The guard's documentation says it is not a sandbox because native libraries do their own file I/O. If
one of these tests fails, a library started going through Python's ``open``: update the documentation in
``symphony_core/_security/_guard.py`` (and the docs that repeat it) rather than the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import polars
import pytest
from _models import write_identity

from symphony_core import PermissionDenied
from symphony_core._security._guard import Policy, acting_as


def nothing_granted(tmp_path: Path) -> Policy:
    return Policy(extension="acme.native", data=tmp_path / "data", cache=tmp_path / "cache")


def test_native_code_bypasses_the_guard_polars(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")

    with acting_as(nothing_granted(tmp_path)):
        with pytest.raises(PermissionDenied):
            table.read_text(encoding="utf-8")
        frame = polars.read_csv(table)
        scanned = polars.scan_csv(table).select(polars.col("b").sum()).collect()

    assert frame.to_dicts() == [{"a": 1, "b": 2}, {"a": 3, "b": 4}], "polars no longer bypasses the guard"
    assert scanned.item() == 6


def test_native_code_bypasses_the_guard_onnxruntime(tmp_path: Path) -> None:
    model = tmp_path / "identity.onnx"
    write_identity(model)

    with acting_as(nothing_granted(tmp_path)):
        with pytest.raises(PermissionDenied):
            model.read_bytes()
        session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        (result,) = session.run(None, {"x": np.array([1.0, 2.0], dtype=np.float32)})

    assert result.tolist() == [1.0, 2.0], "onnxruntime no longer bypasses the guard"
