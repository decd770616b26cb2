"""Attack: reach UNIX sockets outside the sandbox with no network grant."""

from __future__ import annotations

import socket
from typing import Any

from hostile_kit import Hostile, attempt


def _pair_sendto(kind: int, address: str, payload: bytes) -> int:
    one, other = socket.socketpair(socket.AF_UNIX, kind)
    with one, other:
        return one.sendto(payload, address)


class Ext(Hostile):
    def pair_sendto(self, address: str, payload: str) -> dict[str, Any]:
        """``sendto`` from a datagram socket of a ``socketpair`` (the pair itself is allowed)."""
        return attempt(_pair_sendto, socket.SOCK_DGRAM, address, payload.encode())

    def abstract_sendto(self, name: str, payload: str) -> dict[str, Any]:
        return attempt(_pair_sendto, socket.SOCK_DGRAM, "\0" + name, payload.encode())

    def stream_connect(self, address: str, payload: str) -> dict[str, Any]:
        def connect() -> int:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(3)
                sock.connect(address)
                return sock.send(payload.encode())

        return attempt(connect)

    def datagram_socket(self, address: str, payload: str) -> dict[str, Any]:
        def send() -> int:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                return sock.sendto(payload.encode(), address)

        return attempt(send)
