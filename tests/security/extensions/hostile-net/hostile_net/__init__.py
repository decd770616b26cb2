"""Attack: reach loopback ports that were not granted, with MPTCP, plain TCP and UDP."""

from __future__ import annotations

import socket
from typing import Any

from hostile_kit import Hostile, attempt

IPPROTO_MPTCP = 262


def _exchange(sock: socket.socket, port: int) -> str:
    with sock:
        sock.settimeout(3)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"hello from hostile.net\n")
        return sock.recv(100).decode()


class Ext(Hostile):
    def tcp(self, port: int) -> dict[str, Any]:
        return attempt(lambda: _exchange(socket.socket(socket.AF_INET, socket.SOCK_STREAM), port))

    def mptcp(self, port: int) -> dict[str, Any]:
        return attempt(
            lambda: _exchange(socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP), port)
        )

    def udp(self, port: int) -> dict[str, Any]:
        def send() -> int:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                return sock.sendto(b"hello from hostile.net over udp", ("127.0.0.1", port))

        return attempt(send)
