"""What Envoy did about a fault, from its admin counters: retries, ejections, failed checks."""

from __future__ import annotations

import httpx

# Per-cluster counters, as `cluster.<name>.<counter>` in /stats.
COUNTERS = (
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_cx_connect_fail",
    "outlier_detection.ejections_enforced_total",
    "health_check.failure",
)
_TIMEOUT_SECONDS = 2.0


async def cluster_counters(admin_url: str, cluster: str) -> dict[str, int]:
    """The COUNTERS of `cluster` now (a missing one reads 0)."""
    prefix = f"cluster.{cluster}."
    async with httpx.AsyncClient(timeout=_TIMEOUT_SECONDS) as client:
        response = await client.get(f"{admin_url}/stats", params={"filter": f"^{prefix}"})
    values = dict.fromkeys(COUNTERS, 0)
    for line in response.text.splitlines():
        name, _, value = line.partition(":")
        counter = name.strip().removeprefix(prefix)
        if counter in values and value.strip().isdigit():
            values[counter] = int(value.strip())
    return values


def describe(before: dict[str, int], after: dict[str, int]) -> str:
    """What changed, in words: "Envoy retried 12 (12 succeeded), ejected the host 1x"."""
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in COUNTERS}
    return (
        f"Envoy retried {delta['upstream_rq_retry']} "
        f"({delta['upstream_rq_retry_success']} succeeded), "
        f"{delta['upstream_cx_connect_fail']} refused connections, "
        f"{delta['outlier_detection.ejections_enforced_total']} outlier ejections, "
        f"{delta['health_check.failure']} failed health checks"
    )
