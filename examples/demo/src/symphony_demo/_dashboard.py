"""The dashboard motif (`examples.dashboard`), served by this host and fed the demo's results as they come."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symphony_core import Host

from ._run import DASHBOARD

if TYPE_CHECKING:
    from symphony_motifs import MotifServer


def results_file(host: Host) -> Path:
    """Where the dashboard reads the results: ``results.json`` in its own data folder (its only grant)."""
    return host.home.data_dir(DASHBOARD) / "results.json"


def publish(host: Host, data: dict[str, Any]) -> None:
    """Replace the dashboard's results at once, so the page never reads half a file."""
    write(results_file(host), json.dumps(data, default=str))


def serve(host: Host, data: dict[str, Any]) -> MotifServer:
    """Start the dashboard through ``host`` and serve its page on 127.0.0.1; returns the running server.

    The results file exists before the motif starts: in the isolated tier the kernel's rules are made
    for the granted paths that exist when its worker starts.
    """
    from symphony_motifs import serve as serve_motif

    publish(host, data)
    return serve_motif(host, DASHBOARD)


def write(path: Path, data: str | bytes) -> None:
    """Replace ``path`` at once, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(partial, path)
