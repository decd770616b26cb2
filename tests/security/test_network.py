"""Attacks on the network: ports that were not granted, and UNIX sockets with no network grant at all."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "guides" / "sandbox.md"


class Listener:
    """A loopback TCP listener and a UDP socket on the same port, recording what reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.tcp.listen(8)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.1)
        self.closed = False
        self.accepted: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed:
            try:
                connection, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(3)
                try:
                    self.accepted.append(connection.recv(100))
                    connection.sendall(b"welcome\n")
                except OSError:
                    self.accepted.append(b"(no data)")

    def datagrams(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.udp.recv(200))
            except OSError:
                return got

    def close(self) -> None:
        self.closed = True
        self.tcp.close()
        self.udp.close()
        self.thread.join(5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener()
    yield opened
    opened.close()


def test_a_port_grant_holds_against_mptcp_and_plain_tcp_to_another_port(
    scene, steps, arena, listener
) -> None:
    ext = "hostile.net"
    assert listener.port != arena.port_granted

    outcome = scene.run(
        [
            steps.call(ext, "tcp", arena.port_granted, label="tcp to the granted port"),
            steps.call(ext, "mptcp", listener.port, label="mptcp to another port"),
            steps.call(ext, "tcp", listener.port, label="tcp to another port"),
        ],
        setup=steps.start(ext),
        attackers=[ext],
    )

    granted = outcome.value("tcp to the granted port")
    assert "Permission" not in str(granted.get("error")), f"the granted port itself was refused: {granted}"
    assert not outcome.value("mptcp to another port")["ok"], (
        f"MPTCP reached port {listener.port}, which was not granted; the listener got {listener.accepted}"
    )
    assert not outcome.value("tcp to another port")["ok"], (
        f"TCP reached an ungranted port: {listener.accepted}"
    )
    assert listener.accepted == [], f"connections reached the ungranted port: {listener.accepted}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_udp_to_any_port_is_either_refused_or_documented_as_not_restricted(
    scene, steps, arena, listener
) -> None:
    ext = "hostile.net"

    outcome = scene.run(
        [steps.call(ext, "udp", listener.port, label="udp to another port")],
        setup=steps.start(ext),
        attackers=[ext],
    )

    delivered = listener.datagrams()
    if delivered:
        said = [
            sentence
            for sentence in " ".join(DOCS.read_text(encoding="utf-8").split()).split(". ")
            if "UDP" in sentence and "not restricted" in sentence
        ]
        assert said, f"UDP reached an ungranted port ({delivered}) and the sandbox guide does not say so"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def test_unix_sockets_outside_the_sandbox_are_unreachable_without_a_network_grant(scene, steps) -> None:
    ext = "hostile.unix"
    sockets = scene.folder / "sockets"
    sockets.mkdir()
    datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    datagram.bind(str(sockets / "dgram.sock"))
    datagram.settimeout(0.2)
    abstract_name = f"symphony-security-{os.urandom(6).hex()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind("\0" + abstract_name)
    abstract.settimeout(0.2)
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind(str(sockets / "stream.sock"))
    stream.listen(4)
    stream.settimeout(0.2)

    try:
        outcome = scene.run(
            [
                steps.call(
                    ext, "pair_sendto", str(sockets / "dgram.sock"), "via a pair", label="pair sendto"
                ),
                steps.call(ext, "abstract_sendto", abstract_name, "abstract", label="abstract sendto"),
                steps.call(ext, "datagram_socket", str(sockets / "dgram.sock"), "own", label="dgram socket"),
                steps.call(ext, "stream_connect", str(sockets / "stream.sock"), "hi", label="stream connect"),
            ],
            setup=steps.start(ext),
            attackers=[ext],
            isolation="auto",
        )
        received = {"dgram": _drain(datagram), "abstract": _drain(abstract), "stream": _accept(stream)}
    finally:
        for opened in (datagram, abstract, stream):
            opened.close()

    assert received == {"dgram": [], "abstract": [], "stream": []}, (
        f"UNIX sockets outside the sandbox got messages: {received}\n{outcome.describe()}"
    )
    for label in ("pair sendto", "abstract sendto", "dgram socket", "stream connect"):
        assert not outcome.value(label)["ok"], f"{label}: went through\n{outcome.describe()}"
    assert not outcome.harm(), "\n".join(outcome.harm()) + "\n" + outcome.describe()


def _drain(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(200))
        except OSError:
            return got


def _accept(sock: socket.socket) -> list[bytes]:
    try:
        connection, _ = sock.accept()
    except OSError:
        return []
    with connection:
        connection.settimeout(0.5)
        try:
            return [connection.recv(100)]
        except OSError:
            return [b"(connected)"]
