"""The rendered gateway config: Envoy accepts it, and it says what the gateway promises."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import descriptor_pb2

from devstack import gateway_config
from devstack.envoy import envoy_binary, validate_config
from devstack.gateway_config import (
    GatewayConfigError,
    GatewayOptions,
    Upstream,
    options_from_env,
    profile_options,
    read_methods_from_descriptor,
    render_gateway_config,
)
from devstack.services import present_services

Config = dict[str, Any]

PUBLIC_PATHS = (
    "/v1/auth/register",
    "/v1/auth/login",
    "/v1/auth/refresh",
    "/v1/auth/logout",
    "/.well-known/jwks.json",
    "/healthz",
    "/medstation.user.v1.UserService/Register",
    "/medstation.user.v1.UserService/Login",
    "/medstation.user.v1.UserService/Refresh",
    "/medstation.user.v1.UserService/Logout",
    "/medstation.user.v1.UserService/GetJwks",
)
PROTECTED_PATHS = (
    "/v1/users/me",
    "/v1/patients",
    "/v1/nope",
    "/",
    "/medstation.user.v1.UserService/LoginX",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.health.v1.Health/Check",
)
FILTER_ORDER = (
    "health_check.v3.HealthCheck",
    "health_check.v3.HealthCheck",
    "cors.v3.Cors",
    "local_ratelimit.v3.LocalRateLimit",
    "jwt_authn.v3.JwtAuthentication",
    "buffer.v3.Buffer",
    "grpc_json_transcoder.v3.GrpcJsonTranscoder",
    "router.v3.Router",
)
ALL_SERVICES = ("user", "patient-record", "summary", "chat")
# A local 403 is jwt_authn refusing an issuer/audience: answered as the 401 it is.
LOCAL_REPLY_CODES = {400: 3, 401: 16, 403: 16, 404: 5, 413: 8, 429: 8, 503: 14, 504: 4}


@pytest.fixture(scope="module")
def local_options(descriptor: Path) -> GatewayOptions:
    return profile_options("local", descriptor, ALL_SERVICES, env={})


def parse(options: GatewayOptions) -> Config:
    loaded: Config = yaml.safe_load(render_gateway_config(options))
    return loaded


def connection_manager(config: Config) -> Config:
    listener = config["static_resources"]["listeners"][0]
    manager: Config = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def http_filter(config: Config, type_suffix: str) -> Config:
    for entry in connection_manager(config)["http_filters"]:
        typed: Config = entry["typed_config"]
        if typed["@type"].endswith(type_suffix):
            return typed
    raise AssertionError(f"no {type_suffix} filter")


def clusters(config: Config) -> dict[str, Config]:
    return {cluster["name"]: cluster for cluster in config["static_resources"]["clusters"]}


def routes(config: Config) -> list[Config]:
    found: list[Config] = connection_manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    return found


def seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def first_jwt_rule(config: Config, path: str) -> Config:
    """The rule jwt_authn applies to `path`: the first that matches, as Envoy does."""
    for rule in http_filter(config, "JwtAuthentication")["rules"]:
        match = rule["match"]
        if path == match["path"] if "path" in match else path.startswith(match["prefix"]):
            found: Config = rule
            return found
    raise AssertionError(f"no jwt rule matches {path}")


def all_grpc_paths(descriptor: Path) -> list[str]:
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    descriptor_set.ParseFromString(descriptor.read_bytes())
    return [
        f"/{file.package}.{service.name}/{method.name}"
        for file in descriptor_set.file
        if file.package.startswith("medstation.")
        for service in file.service
        for method in service.method
    ]


@pytest.mark.parametrize(
    ("profile", "service_keys"),
    [("local", ALL_SERVICES), ("local", ("user",)), ("k8s", None)],
    ids=["local-all", "local-user-only", "k8s"],
)
def test_envoy_accepts_the_rendered_config(
    descriptor: Path,
    tmp_path: Path,
    profile: gateway_config.Profile,
    service_keys: tuple[str, ...] | None,
) -> None:
    options = profile_options(profile, descriptor, service_keys, env={})
    # The k8s descriptor and OpenAPI paths exist only in the pod; validate with the local files.
    options = dataclasses.replace(
        options,
        descriptor_path=str(descriptor),
        openapi_path=str(gateway_config.repo_root() / gateway_config.OPENAPI_RELATIVE_PATH),
        otlp_endpoint="http://127.0.0.1:4317",
    )
    config_path = tmp_path / "envoy.yaml"
    config_path.write_text(render_gateway_config(options), encoding="utf-8")

    validate_config(config_path)


def test_rendered_config_uses_no_deprecated_envoy_field(
    local_options: GatewayOptions, tmp_path: Path
) -> None:
    # Deprecated fields are removed a few releases later: find them before an upgrade does.
    config_path = tmp_path / "envoy.yaml"
    traced = dataclasses.replace(local_options, otlp_endpoint="http://127.0.0.1:4317")
    config_path.write_text(render_gateway_config(traced), encoding="utf-8")
    command = [str(envoy_binary()), "--mode", "validate", "-c", str(config_path)]

    result = subprocess.run(
        [*command, "--use-dynamic-base-id", "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert "deprecated" not in (result.stdout + result.stderr).lower()


def test_filters_run_in_the_documented_order(local_options: GatewayOptions) -> None:
    filters = connection_manager(parse(local_options))["http_filters"]

    types = [entry["typed_config"]["@type"] for entry in filters]

    assert len(types) == len(FILTER_ORDER)
    for found, expected in zip(types, FILTER_ORDER, strict=True):
        assert found.endswith(f".http.{expected}")


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_public_paths_need_no_token(local_options: GatewayOptions, path: str) -> None:
    assert "requires" not in first_jwt_rule(parse(local_options), path)


@pytest.mark.parametrize("path", PROTECTED_PATHS)
def test_everything_else_requires_a_token(local_options: GatewayOptions, path: str) -> None:
    assert first_jwt_rule(parse(local_options), path)["requires"] == {"provider_name": "medstation"}


def test_every_grpc_method_but_the_public_five_requires_a_token(
    local_options: GatewayOptions, descriptor: Path
) -> None:
    config = parse(local_options)
    open_paths = {
        path
        for path in all_grpc_paths(descriptor)
        if "requires" not in first_jwt_rule(config, path)
    }

    assert open_paths == {path for path in PUBLIC_PATHS if path.startswith("/medstation.")}


def test_jwt_provider_forwards_the_token_and_fetches_keys_from_the_gateway(
    local_options: GatewayOptions,
) -> None:
    jwt = http_filter(parse(local_options), "JwtAuthentication")
    provider = jwt["providers"]["medstation"]

    assert jwt["bypass_cors_preflight"] is True
    assert provider["forward"] is True
    assert (provider["issuer"], provider["audiences"]) == ("medstation", ["medstation-api"])
    assert provider["from_headers"] == [{"name": "Authorization", "value_prefix": "Bearer "}]
    jwks = provider["remote_jwks"]
    assert jwks["http_uri"]["uri"] == "http://127.0.0.1:8080/.well-known/jwks.json"
    assert jwks["http_uri"]["cluster"] == "gateway_self"
    assert jwks["async_fetch"]["fast_listener"] is True
    assert "payload_in_metadata" not in provider


def test_rate_limit_is_enabled_and_enforced_for_every_request(
    local_options: GatewayOptions,
) -> None:
    limit = http_filter(parse(dataclasses.replace(local_options, rate_limit_tokens=7)), "Limit")

    hundred_percent = {"numerator": 100, "denominator": "HUNDRED"}
    assert limit["filter_enabled"]["default_value"] == hundred_percent
    assert limit["filter_enforced"]["default_value"] == hundred_percent
    assert limit["token_bucket"]["max_tokens"] == 7
    # A 429 says when to come back: every bucket refills each second.
    assert limit["token_bucket"]["fill_interval"] == "1s"
    assert {"key": "retry-after", "value": "1"} in [
        entry["header"] for entry in limit["response_headers_to_add"]
    ]


def test_a_bucket_per_client_address_is_rendered_only_when_sized(
    local_options: GatewayOptions,
) -> None:
    sized = dataclasses.replace(
        local_options, client_rate_limit_tokens=20, client_rate_limit_fill_per_second=10
    )

    limit = http_filter(parse(sized), "Limit")

    assert "descriptors" not in http_filter(parse(local_options), "Limit")
    assert limit["rate_limits"] == [{"actions": [{"remote_address": {}}]}]
    (descriptor,) = limit["descriptors"]
    assert descriptor["entries"] == [{"key": "remote_address"}]  # no value: per address
    assert descriptor["token_bucket"] == {
        "max_tokens": 20,
        "tokens_per_fill": 10,
        "fill_interval": "1s",
    }
    assert limit["max_dynamic_descriptors"] >= 1000
    # Both buckets apply: one client cannot take the whole gateway's share either.
    assert limit.get("always_consume_default_token_bucket", True) is True


def test_the_client_address_cannot_be_forged_with_x_forwarded_for(
    local_options: GatewayOptions,
) -> None:
    manager = connection_manager(parse(local_options))

    assert manager["use_remote_address"] is True
    assert manager["xff_num_trusted_hops"] == 0


def test_kubernetes_gateways_limit_each_client(descriptor: Path) -> None:
    options = profile_options("k8s", descriptor)

    limit = http_filter(parse(options), "Limit")

    (bucket,) = limit["descriptors"]
    assert bucket["token_bucket"]["max_tokens"] < options.rate_limit_tokens


def test_transcoder_rejects_what_it_cannot_map(local_options: GatewayOptions) -> None:
    transcoder = http_filter(parse(local_options), "GrpcJsonTranscoder")

    assert transcoder["request_validation_options"] == {
        "reject_unknown_method": True,
        "reject_unknown_query_parameters": True,
        # The URL's id is the one changed: a different one in the body is a 400.
        "reject_binding_body_field_collisions": True,
    }
    assert transcoder["services"] == [u.proto_service for u in local_options.upstreams]
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["auto_mapping"] is False
    assert transcoder["print_options"]["preserve_proto_field_names"] is True
    assert transcoder["print_options"]["stream_newline_delimited"] is True
    assert transcoder["max_request_body_size"] == local_options.max_request_bytes


def test_body_limit_is_the_configured_size(local_options: GatewayOptions) -> None:
    config = parse(dataclasses.replace(local_options, max_request_bytes=2048))

    assert http_filter(config, "buffer.v3.Buffer")["max_request_bytes"] == 2048


def test_healthz_needs_every_upstream_fully_healthy(local_options: GatewayOptions) -> None:
    health = connection_manager(parse(local_options))["http_filters"][0]["typed_config"]

    assert health["pass_through_mode"] is False
    assert health["cluster_min_healthy_percentages"] == {
        upstream.name: {"value": 100} for upstream in local_options.upstreams
    }


def test_upstreams_are_health_checked_every_second_even_when_idle(
    local_options: GatewayOptions,
) -> None:
    found = clusters(parse(local_options))

    for upstream in local_options.upstreams:
        (check,) = found[upstream.name]["health_checks"]
        assert check["grpc_health_check"]["service_name"] == upstream.proto_service
        assert seconds(check["no_traffic_interval"]) <= 1
        assert seconds(check["interval"]) <= 1
        assert (check["unhealthy_threshold"], check["healthy_threshold"]) == (2, 1)


def test_upstream_clusters_eject_failing_hosts_and_budget_retries(
    local_options: GatewayOptions,
) -> None:
    found = clusters(parse(local_options))

    for upstream in local_options.upstreams:
        cluster = found[upstream.name]
        assert cluster["type"] == "STRICT_DNS"
        assert cluster["ignore_health_on_host_removal"] is True
        assert {"consecutive_5xx", "consecutive_gateway_failure"} <= set(
            cluster["outlier_detection"]
        )
        (threshold,) = cluster["circuit_breakers"]["thresholds"]
        assert "retry_budget" in threshold
        protocol = cluster["typed_extension_protocol_options"]
        (http,) = protocol.values()
        assert "connection_keepalive" in http["explicit_http_config"]["http2_protocol_options"]


def test_only_idempotent_reads_are_retried(local_options: GatewayOptions) -> None:
    reads = {
        f"/{upstream.proto_service}/{method}"
        for upstream in local_options.upstreams
        for method in upstream.read_methods
    }
    retrying = [r for r in routes(parse(local_options)) if "retry_policy" in r.get("route", {})]

    assert reads
    assert {route["match"]["path"] for route in retrying} == reads
    for route in retrying:
        assert route["route"]["retry_policy"]["retry_on"] == "unavailable,reset,connect-failure"


def test_streams_get_the_long_timeout_and_are_never_retried(local_options: GatewayOptions) -> None:
    streams = {
        f"/{upstream.proto_service}/{method}"
        for upstream in local_options.upstreams
        for method in upstream.streaming_methods
    }
    stream_routes = [r for r in routes(parse(local_options)) if r["match"].get("path") in streams]

    assert {r["match"]["path"] for r in stream_routes} == streams
    for route in stream_routes:
        assert seconds(route["route"]["timeout"]) == local_options.stream_timeout_seconds
        assert "idle_timeout" in route["route"]
        assert "retry_policy" not in route["route"]


def test_calls_that_wait_for_a_language_model_get_the_model_timeout(
    local_options: GatewayOptions,
) -> None:
    by_path = {
        r["match"]["path"]: r["route"]
        for r in routes(parse(local_options))
        if "path" in r["match"] and "route" in r
    }

    summary = by_path["/medstation.summary.v1.SummaryService/GetSummary"]
    send = by_path["/medstation.chat.v1.ChatService/SendMessage"]

    for route in (summary, send):
        assert seconds(route["timeout"]) == local_options.model_timeout_seconds
    assert "retry_policy" in summary  # a read: generating twice only reuses the first
    assert "retry_policy" not in send  # a write: a lost answer must not send twice


def test_method_routes_come_before_their_service_prefix(local_options: GatewayOptions) -> None:
    found = routes(parse(local_options))
    prefixes = [route["match"].get("prefix") for route in found]

    for upstream in local_options.upstreams:
        prefix_index = prefixes.index(f"/{upstream.proto_service}/")
        exact = [
            index
            for index, route in enumerate(found)
            if route["match"].get("path", "").startswith(f"/{upstream.proto_service}/")
        ]
        assert all(index < prefix_index for index in exact)


def test_grpc_calls_to_unrouted_services_get_404(local_options: GatewayOptions) -> None:
    catch_all = [
        route
        for route in routes(parse(local_options))
        if "direct_response" in route and "prefix" in route["match"]
    ]

    (grpc_not_found,) = catch_all
    assert grpc_not_found["match"]["prefix"] == "/"
    assert grpc_not_found["direct_response"]["status"] == 404


def test_gateway_errors_have_the_service_error_shape(local_options: GatewayOptions) -> None:
    mappers = connection_manager(parse(local_options))["local_reply_config"]["mappers"]

    codes = {
        mapper["filter"]["status_code_filter"]["comparison"]["value"]["default_value"]: (
            mapper["body_format_override"]["json_format"]
        )
        for mapper in mappers
        if "status_code_filter" in mapper["filter"]
    }

    for status, code in LOCAL_REPLY_CODES.items():
        assert codes[status] == {"code": code, "message": "%LOCAL_REPLY_BODY%"}
    rewritten = [m for m in mappers if m.get("status_code") == 401]
    # jwt_authn's 403 (a token for another audience) is a 401, for gRPC callers too.
    assert [mapper_status(m) for m in rewritten] == [403, 403]


def mapper_status(mapper: Config) -> int:
    """The status a local-reply mapper applies to (alone, or within an and_filter)."""
    found = mapper["filter"]
    filters = found["and_filter"]["filters"] if "and_filter" in found else [found]
    [status] = [
        entry["status_code_filter"]["comparison"]["value"]["default_value"]
        for entry in filters
        if "status_code_filter" in entry
    ]
    return int(status)


def test_native_grpc_callers_get_the_grpc_code_of_a_gateway_refusal(
    local_options: GatewayOptions,
) -> None:
    mappers = connection_manager(parse(local_options))["local_reply_config"]["mappers"]

    grpc_codes = {
        mapper_status(mapper): header["header"]["value"]
        for mapper in mappers
        for header in mapper.get("headers_to_add", [])
        if header["header"]["key"] == "grpc-status"
    }

    # Envoy's own mapping would say UNKNOWN for 413 and PERMISSION_DENIED for 403.
    assert grpc_codes == {413: "8", 403: "16"}


def test_access_log_leaves_out_query_strings_and_credentials(
    local_options: GatewayOptions,
) -> None:
    (log,) = connection_manager(parse(local_options))["access_log"]
    fields = log["typed_config"]["log_format"]["json_format"]
    text = yaml.safe_dump(fields).lower()

    assert {"response_code", "grpc_status", "request_id", "trace_id", "upstream_host"} <= set(
        fields
    )
    assert "authorization" not in text
    assert "(:path)" not in text  # %REQ(:PATH)% would log the query string
    assert fields["path"] == "%PATH(NQ:ORIG_OR_PATH)%"


def test_tracing_is_rendered_only_with_a_collector(local_options: GatewayOptions) -> None:
    traced = parse(dataclasses.replace(local_options, otlp_endpoint="http://collector:4317"))

    assert "tracing" not in connection_manager(parse(local_options))
    assert "otlp_collector" not in clusters(parse(local_options))
    tracing = connection_manager(traced)["tracing"]
    assert tracing["spawn_upstream_span"] is True
    assert tracing["provider"]["typed_config"]["service_name"] == "gateway"
    socket = clusters(traced)["otlp_collector"]["load_assignment"]["endpoints"][0]
    address = socket["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == ("collector", 4317)
    # Spans leave in batches, within a second, not in an export call per five spans.
    assert "layered_runtime" not in parse(local_options)
    (layer,) = traced["layered_runtime"]["layers"]
    assert layer["static_layer"] == {
        "tracing.opentelemetry.min_flush_spans": 512,
        "tracing.opentelemetry.flush_interval_ms": 1000,
    }


def test_cors_lists_exact_origins_or_any(local_options: GatewayOptions) -> None:
    origins = ("https://app.example", "https://admin.example")
    exact = parse(dataclasses.replace(local_options, cors_allowed_origins=origins))

    def policy(config: Config) -> Config:
        virtual_host = connection_manager(config)["route_config"]["virtual_hosts"][0]
        found: Config = virtual_host["typed_per_filter_config"]["envoy.filters.http.cors"]
        return found

    assert policy(exact)["allow_origin_string_match"] == [{"exact": o} for o in origins]
    assert policy(parse(local_options))["allow_origin_string_match"] == [
        {"safe_regex": {"regex": ".*"}}
    ]
    for header in ("authorization", "content-type", "idempotency-key", "traceparent"):
        assert header in policy(exact)["allow_headers"]
    assert "grpc-status" in policy(exact)["expose_headers"]


def test_k8s_profile_uses_service_names_and_the_mounted_descriptor(descriptor: Path) -> None:
    options = profile_options("k8s", descriptor)
    config = parse(options)

    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert (listener["address"], listener["port_value"]) == ("0.0.0.0", 8080)
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert [(u.host, u.port) for u in options.upstreams] == [
        ("user", 50051),
        ("patient-record", 50052),
        ("summary", 50053),
        ("chat", 50054),
    ]
    assert http_filter(config, "GrpcJsonTranscoder")["proto_descriptor"] == (
        "/etc/envoy/medstation_api.binpb"
    )
    assert "otlp_collector" in clusters(config)


def test_local_profile_routes_the_services_in_this_checkout(descriptor: Path) -> None:
    present = [entry.key for entry in present_services(gateway_config.repo_root())]

    options = profile_options("local", descriptor, env={})

    assert [upstream.name for upstream in options.upstreams] == present
    assert {upstream.host for upstream in options.upstreams} == {"127.0.0.1"}


def test_unknown_service_keys_are_refused(descriptor: Path) -> None:
    with pytest.raises(GatewayConfigError, match="unknown services"):
        profile_options("k8s", descriptor, ["user", "billing"])


def test_cli_writes_the_k8s_config(tmp_path: Path) -> None:
    out = tmp_path / "rendered" / "envoy.yaml"

    assert gateway_config.main(["--profile", "k8s", "--out", str(out)]) == 0

    assert "/etc/envoy/medstation_api.binpb" in out.read_text(encoding="utf-8")


def test_cli_reports_a_missing_descriptor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gateway_config.main(["--descriptor", str(tmp_path / "absent.binpb")]) == 2
    assert "absent.binpb" in capsys.readouterr().err


def test_read_and_streaming_methods_come_from_the_descriptor(descriptor: Path) -> None:
    reads, streams = read_methods_from_descriptor(
        str(descriptor), "medstation.summary.v1.SummaryService"
    )

    assert "GetSummaryJob" in reads
    assert "CreateSummaryJob" not in reads
    assert streams == ("WatchSummaryJob",)


def test_unknown_service_is_an_error(descriptor: Path) -> None:
    with pytest.raises(GatewayConfigError, match="not in the descriptor"):
        read_methods_from_descriptor(str(descriptor), "medstation.nope.v1.NopeService")


def test_env_names_the_collector_and_the_token_audience(descriptor: Path) -> None:
    upstreams = (Upstream("user", "medstation.user.v1.UserService", "127.0.0.1", 50051),)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "MEDSTATION_JWT_AUDIENCE": "x"}

    options = options_from_env(upstreams, str(descriptor), env, listen_port=18080)
    disabled = options_from_env(upstreams, str(descriptor), {**env, "OTEL_TRACES_EXPORTER": "none"})

    assert (options.otlp_endpoint, options.jwt_audience) == ("http://127.0.0.1:4317", "x")
    assert options.listen_port == 18080
    assert disabled.otlp_endpoint is None


def test_env_sizes_the_rate_limit_and_refuses_nonsense(descriptor: Path) -> None:
    upstreams = (Upstream("user", "medstation.user.v1.UserService", "127.0.0.1", 50051),)
    env = {
        "MEDSTATION_GATEWAY_RATE_LIMIT_PER_SECOND": "5000",
        "MEDSTATION_GATEWAY_RATE_LIMIT_BURST": "10000",
    }

    options = options_from_env(upstreams, str(descriptor), env)

    assert (options.rate_limit_fill_per_second, options.rate_limit_tokens) == (5000, 10000)
    with pytest.raises(GatewayConfigError, match="RATE_LIMIT_BURST"):
        options_from_env(upstreams, str(descriptor), {"MEDSTATION_GATEWAY_RATE_LIMIT_BURST": "-1"})


def test_env_sizes_the_per_client_bucket(descriptor: Path) -> None:
    upstreams = (Upstream("user", "medstation.user.v1.UserService", "127.0.0.1", 50051),)
    env = {
        "MEDSTATION_GATEWAY_CLIENT_RATE_LIMIT_PER_SECOND": "5",
        "MEDSTATION_GATEWAY_CLIENT_RATE_LIMIT_BURST": "10",
    }

    options = options_from_env(upstreams, str(descriptor), env)
    unset = options_from_env(upstreams, str(descriptor), {})

    assert (options.client_rate_limit_fill_per_second, options.client_rate_limit_tokens) == (5, 10)
    assert (unset.client_rate_limit_fill_per_second, unset.client_rate_limit_tokens) == (None, None)
    with pytest.raises(GatewayConfigError, match="CLIENT_RATE_LIMIT_BURST"):
        options_from_env(
            upstreams, str(descriptor), {"MEDSTATION_GATEWAY_CLIENT_RATE_LIMIT_BURST": "ten"}
        )


@pytest.mark.parametrize(
    "change",
    [
        {"upstreams": ()},
        {"otlp_endpoint": "https://collector:4317"},
        {"otlp_endpoint": "http://collector"},
        {"cors_allowed_origins": ()},
        {"listen_host": "10.0.0.7"},
        {"route_timeout_seconds": 0},
        {"client_rate_limit_tokens": 10},
        {"client_rate_limit_tokens": 0, "client_rate_limit_fill_per_second": 5},
    ],
)
def test_options_that_cannot_work_are_refused(
    local_options: GatewayOptions, change: dict[str, Any]
) -> None:
    with pytest.raises(GatewayConfigError):
        render_gateway_config(dataclasses.replace(local_options, **change))


def test_upstream_names_must_not_clash(local_options: GatewayOptions) -> None:
    user = local_options.upstreams[0]
    clash = dataclasses.replace(user, name="gateway_self")

    for upstreams in ((user, user), (clash,)):
        with pytest.raises(GatewayConfigError, match="unique"):
            render_gateway_config(dataclasses.replace(local_options, upstreams=upstreams))


def test_spans_carry_the_path_never_the_query(local_options: GatewayOptions) -> None:
    # Envoy's own http.url tag is the full URL, and searches put patient names in the query.
    traced = parse(dataclasses.replace(local_options, otlp_endpoint="http://collector:4317"))
    tracing = connection_manager(traced)["tracing"]

    assert {"tag": "http.url", "value": "%PATH(NQ:ORIG_OR_PATH)%"} in tracing["custom_tags"]
    assert "NQ" in tracing["operation"]
    assert "NQ" in tracing["upstream_operation"]


_UPSTREAMS = (Upstream("user", "medstation.user.v1.UserService", "127.0.0.1", 50051),)
_COLLECTOR = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}


@pytest.mark.parametrize(
    ("sampler", "argument", "percent"),
    [
        ("", "", 100),
        ("parentbased_always_on", "", 100),
        ("always_off", "", 0),
        ("parentbased_traceidratio", "0.25", 25),
        ("traceidratio", "", 100),
    ],
)
def test_the_sampler_variables_set_the_share_of_requests_traced(
    descriptor: Path, sampler: str, argument: str, percent: float
) -> None:
    env = {**_COLLECTOR, "OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": argument}

    options = options_from_env(_UPSTREAMS, str(descriptor), env)

    assert options.trace_sampling_percent == percent
    tracing = connection_manager(parse(options))["tracing"]
    assert tracing["random_sampling"] == {"value": percent}


@pytest.mark.parametrize(
    ("sampler", "argument"), [("jaeger_remote", ""), ("traceidratio", "2"), ("traceidratio", "x")]
)
def test_samplers_envoy_cannot_honour_are_refused(
    descriptor: Path, sampler: str, argument: str
) -> None:
    env = {**_COLLECTOR, "OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": argument}

    with pytest.raises(GatewayConfigError, match="OTEL_TRACES_SAMPLER"):
        options_from_env(_UPSTREAMS, str(descriptor), env)


def test_the_service_name_and_resource_attributes_come_from_the_environment(
    descriptor: Path,
) -> None:
    env = {
        **_COLLECTOR,
        "OTEL_SERVICE_NAME": "edge",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging",
    }

    provider = connection_manager(parse(options_from_env(_UPSTREAMS, str(descriptor), env)))[
        "tracing"
    ]["provider"]["typed_config"]
    plain = connection_manager(parse(options_from_env(_UPSTREAMS, str(descriptor), _COLLECTOR)))[
        "tracing"
    ]["provider"]["typed_config"]

    assert provider["service_name"] == "edge"
    [detector] = provider["resource_detectors"]
    assert detector["name"] == "envoy.tracers.opentelemetry.resource_detectors.environment"
    assert plain["service_name"] == "gateway"
    assert "resource_detectors" not in plain


def test_the_k8s_gateway_labels_its_spans_with_its_pod(descriptor: Path) -> None:
    provider = connection_manager(parse(profile_options("k8s", descriptor)))["tracing"]["provider"]

    assert "resource_detectors" in provider["typed_config"]


@pytest.mark.parametrize(
    ("variables", "endpoint"),
    [
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317"}, "http://traces:4317"),
        ({"OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, None),
    ],
)
def test_the_collector_follows_the_sdk_variables(
    descriptor: Path, variables: dict[str, str], endpoint: str | None
) -> None:
    options = options_from_env(_UPSTREAMS, str(descriptor), {**_COLLECTOR, **variables})

    assert options.otlp_endpoint == endpoint


# --- GET /openapi.json ------------------------------------------------------------------------


def openapi_route(config: Config) -> Config | None:
    for route in routes(config):
        if route["match"].get("path") == "/openapi.json":
            found: Config = route
            return found
    return None


def test_the_openapi_document_is_served_by_envoy_without_a_token(
    local_options: GatewayOptions,
) -> None:
    config = parse(local_options)
    route = openapi_route(config)
    committed = gateway_config.repo_root() / gateway_config.OPENAPI_RELATIVE_PATH

    assert route is not None
    assert route["direct_response"] == {"status": 200, "body": {"filename": str(committed)}}
    assert "requires" not in first_jwt_rule(config, "/openapi.json")
    # Before the catch-all routes, and not turned into a 404 by the transcoder.
    assert routes(config).index(route) < len(routes(config)) - 2
    assert route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]["disabled"]
    limit = connection_manager(config)["route_config"]["max_direct_response_body_size_bytes"]
    assert committed.stat().st_size < limit


def test_the_k8s_gateway_serves_the_mounted_openapi_document(descriptor: Path) -> None:
    route = openapi_route(parse(profile_options("k8s", descriptor)))

    assert route is not None
    assert route["direct_response"]["body"] == {"filename": "/etc/envoy/openapi.json"}


def test_without_an_openapi_path_there_is_no_openapi_route(descriptor: Path) -> None:
    options = GatewayOptions(upstreams=_UPSTREAMS, descriptor_path=str(descriptor))
    config = parse(options)

    assert openapi_route(config) is None
    assert "max_direct_response_body_size_bytes" not in connection_manager(config)["route_config"]


def test_a_plus_in_a_query_string_is_a_space(local_options: GatewayOptions) -> None:
    # Found by fuzzing: form-encoded `order_by=name+desc` was refused as an unknown order.
    transcoder = http_filter(parse(local_options), "GrpcJsonTranscoder")

    assert transcoder["query_param_unescape_plus"] is True
