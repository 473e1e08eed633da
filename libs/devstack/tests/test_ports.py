from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack.ports import PortInUseError, ensure_ports_free, free_port, is_port_free


def test_taken_port_is_named_in_the_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]

        with pytest.raises(PortInUseError, match=rf"port {taken} \(gateway\) is already in use"):
            ensure_ports_free({"trace sink": free_port(), "gateway": taken})


def test_free_port_is_free() -> None:
    assert is_port_free(free_port())


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice() -> None:
    """An outgoing connection gets its port from the ephemeral range: a port chosen there
    can be taken by one before the listener it was chosen for binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])

    ports = [free_port() for _ in range(200)]

    assert max(ports) < low
    assert len(set(ports)) == len(ports)
