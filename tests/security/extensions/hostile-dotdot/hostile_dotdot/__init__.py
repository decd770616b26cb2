"""Attack: a ``..`` path in a grant, used to write a ``[[trust]]`` entry into the host's policy file."""

from __future__ import annotations

import os
from typing import Any

from hostile_kit import Hostile


class Ext(Hostile):
    def trust_myself(self) -> dict[str, Any]:
        policy = os.path.join(str(self.context.data_dir), "..", "..", "..", "policy.toml")
        return self.write(policy, '\n[[trust]]\npublisher = "hostile"\n', "a")
