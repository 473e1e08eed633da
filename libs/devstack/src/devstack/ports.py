"""Local TCP ports: pick a free one, or prove the ones we need are free before starting."""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping


class PortInUseError(RuntimeError):
    """A port the local stack must listen on is taken by another process."""

    def __init__(self, port: int, purpose: str, host: str) -> None:
        super().__init__(
            f"port {port} ({purpose}) is already in use on {host}: stop whatever listens "
            f"there (is another `make run` still running? try `ss -ltnp 'sport = :{port}'`)"
        )
        self.port = port
        self.purpose = purpose


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def is_port_free(port: int, host: str = "127.0.0.1") -> bool:
    # No SO_REUSEPORT on the probe: a gRPC listener that set it must still count as taken.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
        return True


def ensure_ports_free(ports: Mapping[str, int], host: str = "127.0.0.1") -> None:
    """Raise PortInUseError naming the first taken port; `ports` maps purpose to port."""
    for purpose, port in ports.items():
        if port and not is_port_free(port, host):
            raise PortInUseError(port, purpose, host)
