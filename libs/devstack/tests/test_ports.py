from __future__ import annotations

import socket

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
