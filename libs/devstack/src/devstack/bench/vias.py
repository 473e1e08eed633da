"""The two paths every scenario is measured on: through the gateway, and straight to the service."""

from __future__ import annotations

VIA_GATEWAY = "gateway"
VIA_DIRECT = "direct"
VIAS = (VIA_GATEWAY, VIA_DIRECT)
VIA_LABELS = {VIA_GATEWAY: "gateway · REST · wrk", VIA_DIRECT: "direct · gRPC · grpc.aio"}
