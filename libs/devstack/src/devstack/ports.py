"""Local TCP ports: pick a free one, or prove the ones we need are free before starting."""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Mapping
from pathlib import Path


class PortInUseError(RuntimeError):
    """A port the local stack must listen on is taken by another process."""

    def __init__(self, port: int, purpose: str, host: str) -> None:
        super().__init__(
            f"port {port} ({purpose}) is already in use on {host}: stop whatever listens "
            f"there (is another `make run` still running? try `ss -ltnp 'sport = :{port}'`)"
        )
        self.port = port
        self.purpose = purpose


# Below the kernel's ephemeral range: a listener started a moment after its port was
# chosen must not find it taken by an outgoing connection (the kernel numbers those from
# the ephemeral range, and a stack makes hundreds). Linux's default range starts at 32768.
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10_000
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, below the ephemeral range and never handed out
    before by this process (two services asking in turn get different ports)."""
    highest = _first_ephemeral_port() - 1
    for _ in range(1_000):
        port = random.randint(_LOWEST_PORT, highest)  # noqa: S311  # not a secret
        if port not in _handed_out and is_port_free(port, host):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port between {_LOWEST_PORT} and {highest} on {host}")


def _first_ephemeral_port() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


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
