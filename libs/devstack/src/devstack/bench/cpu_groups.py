"""Which processes a measurement's CPU columns add up: groups of local ports, plus
PostgreSQL (by name) and the load generator (this process and its reaped children)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from devstack.bench import cpu

GATEWAY = "gateway"
SERVICE = "service"
OTHERS = "other services"
POSTGRES = "postgres"
REDIS = "redis"
LOAD_GENERATOR = "load generator"
# The columns of a load scenario's table, in order.
CPU_GROUPS = (GATEWAY, SERVICE, OTHERS, POSTGRES, REDIS, LOAD_GENERATOR)
REDIS_DEFAULT_PORT = 6379


def port_of(url: str, default: int | None = None) -> int:
    """The port of a URL, or of "host:port" (written "//host:port")."""
    port = urlsplit(url).port or default
    if port is None:
        raise ValueError(f"{url!r} names no port")
    return port


def address_port(address: str) -> int:
    return port_of(f"//{address}")


def readers(ports: Mapping[str, Sequence[int]]) -> dict[str, cpu.CpuReader]:
    """A reader per group of ports whose processes are on this machine, PostgreSQL's and
    the load generator's. A group with no local process (a remote Redis, a service not
    running) has no reader: its column stays empty."""
    found: dict[str, cpu.CpuReader] = {}
    for group, group_ports in ports.items():
        if pids := sorted({pid for port in group_ports for pid in cpu.listening_pids(port)}):
            found[group] = cpu.pids_seconds(pids)
    found[POSTGRES] = cpu.named_tree_seconds("postgres")
    found[LOAD_GENERATOR] = cpu.own_process_seconds
    return found


def request_path_readers(
    gateway_url: str, service_addr: str, other_addrs: Sequence[str], redis_url: str
) -> dict[str, cpu.CpuReader]:
    """The groups of a load scenario (CPU_GROUPS)."""
    return readers(
        {
            GATEWAY: [port_of(gateway_url)],
            SERVICE: [address_port(service_addr)],
            OTHERS: [address_port(address) for address in other_addrs],
            REDIS: [port_of(redis_url, default=REDIS_DEFAULT_PORT)],
        }
    )
