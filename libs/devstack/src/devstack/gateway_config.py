"""Render gateway/envoy.yaml.j2, the one Envoy config, for a local run or for Kubernetes.

`python -m devstack.gateway_config --profile k8s --out envoy.yaml` renders the Kubernetes
config; the local stack calls `render_gateway_config` with the services it started.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import jinja2
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from devstack.services import SERVICES, ServiceEntry, present_services

Profile = Literal["local", "k8s"]

TEMPLATE_RELATIVE_PATH = Path("gateway") / "envoy.yaml.j2"
DESCRIPTOR_RELATIVE_PATH = Path("gateway") / "generated" / "medstation_api.binpb"
K8S_DESCRIPTOR_PATH = "/etc/envoy/medstation_api.binpb"
OPENAPI_RELATIVE_PATH = Path("gateway") / "generated" / "openapi.json"
K8S_OPENAPI_PATH = "/etc/envoy/openapi.json"
K8S_OTLP_ENDPOINT = "http://otel-collector:4317"

# Unary methods with these prefixes only read: a retry cannot apply anything twice.
_READ_PREFIXES = ("Get", "List", "Search")
# Unary methods that wait for a language model before answering: they get the longer
# model timeout (streaming methods have their own).
_MODEL_METHODS = {
    "medstation.summary.v1.SummaryService": ("GetSummary",),
    "medstation.chat.v1.ChatService": ("SendMessage",),
}
# Clusters the template defines itself; an upstream may not take their names.
_RESERVED_CLUSTERS = {"gateway_self", "otlp_collector", "rest_not_transcoded"}
_SELF_REACHABLE_HOSTS = {"127.0.0.1", "0.0.0.0"}


@dataclass(frozen=True)
class Upstream:
    """One gRPC service behind the gateway: an Envoy cluster and its routes."""

    name: str  # cluster name, the service key ("user", "patient-record"...)
    proto_service: str  # full proto name, e.g. "medstation.user.v1.UserService"
    host: str
    port: int
    read_methods: tuple[str, ...] = ()  # retried on another host when one fails
    streaming_methods: tuple[str, ...] = ()  # long timeout, never retried
    model_methods: tuple[str, ...] = ()  # wait for a language model: the model timeout
    # Further replicas of the service, (host, port) each, beside host:port: one cluster,
    # every endpoint health-checked and load-balanced on its own.
    extra_endpoints: tuple[tuple[str, int], ...] = ()

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        return ((self.host, self.port), *self.extra_endpoints)


@dataclass(frozen=True)
class GatewayOptions:
    """Everything that differs between gateway deployments; the template holds the rest."""

    upstreams: tuple[Upstream, ...]
    descriptor_path: str
    # Served at GET /openapi.json (written by `python -m devstack.openapi`); None: no route.
    openapi_path: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 9901
    jwt_issuer: str = "medstation"
    jwt_audience: str = "medstation-api"
    # Verified tokens Envoy remembers per worker thread (a client's one token a session).
    jwt_cache_size: int = 10_000
    otlp_endpoint: str | None = None  # "http://host:port" (OTLP/gRPC); None: no tracing
    service_name: str = "gateway"
    # Share of requests Envoy traces (never one whose caller's traceparent says unsampled).
    trace_sampling_percent: float = 100.0
    # Envoy adds the OTEL_RESOURCE_ATTRIBUTES of its own environment to its spans.
    resource_from_environment: bool = False
    cors_allowed_origins: tuple[str, ...] = ("*",)
    # 1 MiB: a 100 000-character note is at most 400 KB of UTF-8 (600 KB if \u-escaped).
    max_request_bytes: int = 1_048_576
    # A page of 100 notes of 100 000 characters each must still fit.
    max_response_bytes: int = 16 * 1_048_576
    rate_limit_tokens: int = 500
    rate_limit_fill_per_second: int = 250
    # A bucket per client address as well (both set) or none (both None). Off locally,
    # where every client is 127.0.0.1; on in Kubernetes, where the load balancer keeps
    # client addresses.
    client_rate_limit_tokens: int | None = None
    client_rate_limit_fill_per_second: int | None = None
    route_timeout_seconds: float = 15.0
    stream_timeout_seconds: float = 300.0
    # Above the services' default model budget (MEDSTATION_LLM_TIMEOUT_SECONDS, 60 s).
    model_timeout_seconds: float = 90.0
    stream_idle_timeout_seconds: float = 60.0
    profile: Profile = "local"


class GatewayConfigError(ValueError):
    """The options cannot make a working gateway config."""


def repo_root() -> Path:
    """The checkout holding gateway/envoy.yaml.j2: $MEDSTATION_REPO_ROOT, else found upwards.

    Walking up from this file works for an editable install and for PYTHONPATH=src runs.
    """
    if configured := os.environ.get("MEDSTATION_REPO_ROOT"):
        return Path(configured)
    for directory in Path(__file__).resolve().parents:
        if (directory / TEMPLATE_RELATIVE_PATH).is_file():
            return directory
    raise GatewayConfigError(
        f"cannot find {TEMPLATE_RELATIVE_PATH} above {__file__}; set MEDSTATION_REPO_ROOT"
    )


def default_descriptor_path() -> Path:
    """The committed descriptor set `make proto` builds for the transcoder."""
    return repo_root() / DESCRIPTOR_RELATIVE_PATH


def render_gateway_config(options: GatewayOptions) -> str:
    """The Envoy bootstrap YAML for `options`."""
    _check(options)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(repo_root() / TEMPLATE_RELATIVE_PATH.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # YAML, not HTML: values are quoted with `tojson` in the template
    )
    template = environment.get_template(TEMPLATE_RELATIVE_PATH.name)
    return template.render(_template_context(options))


def _check(options: GatewayOptions) -> None:
    if not options.upstreams:
        raise GatewayConfigError("the gateway needs at least one upstream")
    names = [upstream.name for upstream in options.upstreams]
    if len(set(names)) != len(names) or _RESERVED_CLUSTERS & set(names):
        raise GatewayConfigError(f"upstream names must be unique and not reserved: {names}")
    for upstream in options.upstreams:
        if len(set(upstream.endpoints)) != len(upstream.endpoints):
            raise GatewayConfigError(
                f"{upstream.name} lists an endpoint twice: {upstream.endpoints}"
            )
    if not options.cors_allowed_origins:
        raise GatewayConfigError("cors_allowed_origins is empty; use ('*',) to allow any")
    client_bucket = (options.client_rate_limit_tokens, options.client_rate_limit_fill_per_second)
    if (client_bucket[0] is None) != (client_bucket[1] is None):
        raise GatewayConfigError(
            "client_rate_limit_tokens and client_rate_limit_fill_per_second go together"
        )
    if any(value is not None and value < 1 for value in client_bucket):
        raise GatewayConfigError(f"the per-client bucket must be positive, not {client_bucket}")
    if not 0 <= options.trace_sampling_percent <= 100:
        raise GatewayConfigError(
            f"trace_sampling_percent must be within 0-100, not {options.trace_sampling_percent}"
        )
    if options.listen_host not in _SELF_REACHABLE_HOSTS:
        # jwt_authn fetches the JWKS from 127.0.0.1:<listen_port> (the gateway_self cluster).
        raise GatewayConfigError(
            f"listen_host {options.listen_host!r} is not reachable on 127.0.0.1, where the "
            f"gateway fetches its own JWKS; use one of {sorted(_SELF_REACHABLE_HOSTS)}"
        )


def _template_context(options: GatewayOptions) -> dict[str, object]:
    context = asdict(options)
    context.update(
        upstreams=[
            {**asdict(upstream), "endpoints": [list(e) for e in upstream.endpoints]}
            for upstream in options.upstreams
        ],
        trace_sampling_percent=f"{options.trace_sampling_percent:g}",
        otlp=_otlp_address(options.otlp_endpoint),
        client_rate_limit=_client_rate_limit(options),
        route_timeout=envoy_duration(options.route_timeout_seconds),
        route_timeout_grpc=grpc_timeout(options.route_timeout_seconds),
        stream_timeout=envoy_duration(options.stream_timeout_seconds),
        stream_timeout_grpc=grpc_timeout(options.stream_timeout_seconds),
        stream_idle_timeout=envoy_duration(options.stream_idle_timeout_seconds),
        model_timeout=envoy_duration(options.model_timeout_seconds),
        model_timeout_grpc=grpc_timeout(options.model_timeout_seconds),
    )
    return context


def _client_rate_limit(options: GatewayOptions) -> dict[str, int] | None:
    if (
        options.client_rate_limit_tokens is None
        or options.client_rate_limit_fill_per_second is None
    ):
        return None
    return {
        "tokens": options.client_rate_limit_tokens,
        "fill_per_second": options.client_rate_limit_fill_per_second,
    }


def envoy_duration(seconds: float) -> str:
    """A protobuf Duration in YAML: "15s", "0.5s"."""
    if seconds <= 0:
        raise GatewayConfigError(f"a timeout must be positive, got {seconds}")
    return f"{seconds:g}s"


def grpc_timeout(seconds: float) -> str:
    """A grpc-timeout header value: whole milliseconds, at most 8 digits ("15000m")."""
    return f"{max(1, round(seconds * 1000))}m"


def _otlp_address(endpoint: str | None) -> dict[str, object] | None:
    """host/port of an OTLP/gRPC endpoint ("http://host:4317"); None or "" disables tracing."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        # TLS to the collector would need a transport socket the template does not render.
        raise GatewayConfigError(f"OTLP endpoint must be http://host:port, got {endpoint!r}")
    return {"host": parts.hostname, "port": parts.port}


def read_methods_from_descriptor(
    descriptor_path: str, proto_service: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(idempotent unary reads: Get*/List*/Search*, server-streaming methods) of a service."""
    service = _find_service(_load_descriptor_set(descriptor_path), proto_service)
    reads = tuple(
        method.name
        for method in service.method
        if not method.client_streaming
        and not method.server_streaming
        and method.name.startswith(_READ_PREFIXES)
    )
    streams = tuple(method.name for method in service.method if method.server_streaming)
    return reads, streams


def _load_descriptor_set(path: str) -> descriptor_pb2.FileDescriptorSet:
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    try:
        descriptor_set.ParseFromString(Path(path).read_bytes())
    except (OSError, DecodeError) as error:
        raise GatewayConfigError(f"cannot read descriptor set {path}: {error}") from error
    return descriptor_set


def _find_service(
    descriptor_set: descriptor_pb2.FileDescriptorSet, proto_service: str
) -> descriptor_pb2.ServiceDescriptorProto:
    for file in descriptor_set.file:
        for service in file.service:
            if f"{file.package}.{service.name}".lstrip(".") == proto_service:
                return service
    raise GatewayConfigError(f"service {proto_service} is not in the descriptor set")


def upstream_from_descriptor(
    name: str,
    proto_service: str,
    host: str,
    port: int,
    descriptor_path: str,
    extra_endpoints: tuple[tuple[str, int], ...] = (),
) -> Upstream:
    """An Upstream whose read and streaming routes come from the service's methods."""
    reads, streams = read_methods_from_descriptor(descriptor_path, proto_service)
    return Upstream(
        name,
        proto_service,
        host,
        port,
        reads,
        streams,
        _MODEL_METHODS.get(proto_service, ()),
        extra_endpoints,
    )


def options_from_env(
    upstreams: tuple[Upstream, ...],
    descriptor_path: str,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> GatewayOptions:
    """GatewayOptions honouring the variables the services read too, then `overrides`.

    The OpenTelemetry ones, as the services' SDK reads them: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    or OTEL_EXPORTER_OTLP_ENDPOINT (none, OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true:
    no tracing), OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER/_ARG (the share of requests traced), and
    OTEL_RESOURCE_ATTRIBUTES (when set, Envoy reads it from its own environment at start).
    MEDSTATION_JWT_ISSUER and MEDSTATION_JWT_AUDIENCE, so gateway and services agree;
    MEDSTATION_GATEWAY_RATE_LIMIT_PER_SECOND and _BURST size the gateway's token bucket,
    MEDSTATION_GATEWAY_CLIENT_RATE_LIMIT_PER_SECOND and _BURST (both or neither) add one
    bucket per client address.
    """
    env = os.environ if env is None else env
    options = GatewayOptions(
        upstreams=upstreams,
        descriptor_path=descriptor_path,
        openapi_path=str(repo_root() / OPENAPI_RELATIVE_PATH),
    )
    options = replace(
        options,
        otlp_endpoint=_otlp_endpoint_from_env(env),
        service_name=env.get("OTEL_SERVICE_NAME", "").strip() or options.service_name,
        trace_sampling_percent=sampling_percent_from_env(env),
        resource_from_environment=bool(env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()),
        jwt_issuer=env.get("MEDSTATION_JWT_ISSUER") or options.jwt_issuer,
        jwt_audience=env.get("MEDSTATION_JWT_AUDIENCE") or options.jwt_audience,
        rate_limit_fill_per_second=_positive_int(
            env, "MEDSTATION_GATEWAY_RATE_LIMIT_PER_SECOND", options.rate_limit_fill_per_second
        ),
        rate_limit_tokens=_positive_int(
            env, "MEDSTATION_GATEWAY_RATE_LIMIT_BURST", options.rate_limit_tokens
        ),
        client_rate_limit_fill_per_second=_optional_positive_int(
            env, "MEDSTATION_GATEWAY_CLIENT_RATE_LIMIT_PER_SECOND"
        ),
        client_rate_limit_tokens=_optional_positive_int(
            env, "MEDSTATION_GATEWAY_CLIENT_RATE_LIMIT_BURST"
        ),
    )
    return replace(options, **overrides)


def _otlp_endpoint_from_env(env: Mapping[str, str]) -> str | None:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    traces_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    return traces_endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or None


# OTEL_TRACES_SAMPLER values and the share of traces each keeps; the ratio samplers
# take theirs from OTEL_TRACES_SAMPLER_ARG.
_FIXED_SAMPLERS = {
    "always_on": 100.0,
    "parentbased_always_on": 100.0,
    "always_off": 0.0,
    "parentbased_always_off": 0.0,
}
_RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")


def sampling_percent_from_env(env: Mapping[str, str]) -> float:
    """The percentage of traces OTEL_TRACES_SAMPLER (and _ARG) keep; 100 when unset.

    Envoy applies it to every request, and never traces one whose traceparent says
    unsampled. A sampled caller's trace Envoy skips is still continued by the services
    (parent-based samplers): it then lacks only the gateway's spans.
    """
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if not sampler:
        return 100.0
    if sampler in _FIXED_SAMPLERS:
        return _FIXED_SAMPLERS[sampler]
    if sampler not in _RATIO_SAMPLERS:
        known = ", ".join([*_FIXED_SAMPLERS, *_RATIO_SAMPLERS])
        raise GatewayConfigError(
            f"OTEL_TRACES_SAMPLER={sampler!r} cannot be rendered for Envoy; use one of {known}"
        )
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = float(raw) if raw else 1.0
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise GatewayConfigError(f"OTEL_TRACES_SAMPLER_ARG must be a ratio in [0, 1], not {raw!r}")
    return ratio * 100


def _optional_positive_int(env: Mapping[str, str], name: str) -> int | None:
    return _positive_int(env, name, 0) or None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise GatewayConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


# The documented production sampling: one request in ten is traced, decided once at the
# gateway (services sample parent-based, so a trace is whole or absent). Benchmarks run
# at this rate; `make run` and the tests trace everything.
PRODUCTION_TRACE_SAMPLING_PERCENT = 10.0


def profile_options(
    profile: Profile,
    descriptor_file: Path,
    service_keys: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> GatewayOptions:
    """The options `make run` (local) or the Kubernetes manifests (k8s) use.

    Routes `service_keys`, by default the services in this checkout (local) or all of them
    (k8s). Read methods come from `descriptor_file` (the local copy); the k8s config names
    the path the descriptor is mounted at in the pod instead.
    """
    k8s = profile == "k8s"
    entries = _select_services(service_keys, SERVICES if k8s else present_services(repo_root()))
    upstreams = tuple(
        upstream_from_descriptor(
            entry.key,
            entry.proto_service,
            entry.key if k8s else "127.0.0.1",
            entry.grpc_port,
            str(descriptor_file),
        )
        for entry in entries
    )
    if not k8s:
        return options_from_env(upstreams, str(descriptor_file), env)
    # The listener must accept traffic from the pod network. Admin stays on loopback: it can
    # stop Envoy and dump its config; reach it with `kubectl port-forward`, probe /readyz.
    # The pod's OTEL_RESOURCE_ATTRIBUTES (its name and namespace) label the gateway's spans.
    return GatewayOptions(
        upstreams=upstreams,
        descriptor_path=K8S_DESCRIPTOR_PATH,
        openapi_path=K8S_OPENAPI_PATH,
        listen_host="0.0.0.0",
        otlp_endpoint=K8S_OTLP_ENDPOINT,
        resource_from_environment=True,
        # Per gateway pod, like the gateway-wide bucket (250/s, burst 500).
        client_rate_limit_tokens=200,
        client_rate_limit_fill_per_second=100,
        trace_sampling_percent=PRODUCTION_TRACE_SAMPLING_PERCENT,
        profile="k8s",
    )


def _select_services(
    keys: Sequence[str] | None, default: Sequence[ServiceEntry]
) -> list[ServiceEntry]:
    if keys is None:
        return list(default)
    known = {service.key: service for service in SERVICES}
    if unknown := sorted(set(keys) - set(known)):
        raise GatewayConfigError(f"unknown services {unknown}; known: {sorted(known)}")
    return [known[key] for key in keys]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.gateway_config",
        description="Render gateway/envoy.yaml.j2 into an Envoy config.",
    )
    parser.add_argument("--profile", choices=("local", "k8s"), default="local")
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    parser.add_argument(
        "--descriptor",
        type=Path,
        help=f"descriptor set to read methods from (default: {DESCRIPTOR_RELATIVE_PATH})",
    )
    parser.add_argument(
        "--service",
        action="append",
        dest="services",
        metavar="KEY",
        help="route this service (repeatable; default: local, those in this checkout; k8s, all)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    descriptor = args.descriptor or default_descriptor_path()
    try:
        options = profile_options(args.profile, descriptor, args.services)
        rendered = render_gateway_config(options)
    except GatewayConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(rendered)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
