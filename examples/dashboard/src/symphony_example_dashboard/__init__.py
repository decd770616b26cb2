"""A live dashboard of what a host application ran: operator results, instrument predictions, who failed.

The host writes its results as JSON into this motif's data folder (``{data}/results.json``) as they come;
the page asks `results` for them every second. The motif reaches no other extension: it shows only what
the host chose to give it.
"""

from __future__ import annotations

import json
from typing import Any

from symphony_motifs import Motif, MotifError

RESULTS = "results.json"


class Dashboard(Motif):
    """Shows the results file the host keeps in this motif's data folder."""

    def results(self) -> dict[str, Any]:
        """The latest results, and whether there are any yet: ``{"available": bool, "data": {...}}``."""
        path = self.context.data_dir / RESULTS
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"available": False, "data": None}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MotifError(
                f"{path} is not valid JSON ({exc})",
                extension=self.context.id,
                hint="the host writes this file; replace it whole (write a temporary file, then rename it)",
            ) from None
        return {"available": True, "data": data}
