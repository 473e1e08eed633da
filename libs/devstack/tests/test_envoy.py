"""The Envoy launcher, and the rendered gateway running for real: what its clients see."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.api import httpbody_pb2
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from devstack import gateway_config
from devstack.envoy import (
    EnvoyError,
    EnvoyProcess,
    admin_address,
    envoy_binary,
    start_envoy,
    validate_config,
)
from devstack.gateway_config import GatewayOptions, Upstream, render_gateway_config
from devstack.ports import free_port

USER = "medstation.user.v1.UserService"
SUMMARY = "medstation.summary.v1.SummaryService"
ORIGIN = "https://app.example"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
DEADLINE = 10.0


def minimal_config(tmp_path: Path, admin_port: int) -> Path:
    """Admin only: the smallest config Envoy starts with. JSON is YAML too."""
    path = tmp_path / "minimal.yaml"
    admin = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    path.write_text(json.dumps({"admin": admin}), encoding="utf-8")
    return path


def test_envoy_binary_is_installed_next_to_python() -> None:
    assert envoy_binary().is_file()


def test_validate_config_explains_a_rejected_config(tmp_path: Path) -> None:
    path = minimal_config(tmp_path, free_port())
    config = json.loads(path.read_text(encoding="utf-8")) | {"no_such_field": 1}
    path.write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(EnvoyError, match="no_such_field"):
        validate_config(path)


def test_start_waits_until_ready_and_stop_ends_envoy(tmp_path: Path) -> None:
    port = free_port()
    config = minimal_config(tmp_path, port)

    envoy = start_envoy(config, tmp_path / "envoy.log")
    try:
        assert admin_address(config) == ("127.0.0.1", port)
        assert httpx.get(f"{envoy.admin_url}/ready").text.strip() == "LIVE"
    finally:
        envoy.stop()

    assert envoy.process.returncode is not None


def test_failed_start_raises_with_the_log_tail(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = minimal_config(tmp_path, taken.getsockname()[1])

        with pytest.raises(EnvoyError, match="Address already in use"):
            start_envoy(config, tmp_path / "envoy.log", ready_timeout=DEADLINE)


# --- the gateway, rendered and running -------------------------------------------------------


@contextlib.contextmanager
def running_gateway(directory: Path, options: GatewayOptions) -> Iterator[str]:
    """Envoy with `options` on free ports; yields its base URL."""
    config = directory / "envoy.yaml"
    config.write_text(render_gateway_config(options), encoding="utf-8")
    envoy: EnvoyProcess = start_envoy(config, directory / "envoy.log", ready_timeout=DEADLINE)
    try:
        yield f"http://127.0.0.1:{options.listen_port}"
    finally:
        envoy.stop()


def gateway_options(
    descriptor: Path, upstreams: tuple[Upstream, ...], **change: Any
) -> GatewayOptions:
    return GatewayOptions(
        upstreams=upstreams,
        descriptor_path=str(descriptor),
        listen_port=free_port(),
        admin_port=free_port(),
        cors_allowed_origins=(ORIGIN,),
        **change,
    )


def user_upstream(descriptor: Path, port: int) -> Upstream:
    return gateway_config.upstream_from_descriptor("user", USER, "127.0.0.1", port, str(descriptor))


def assert_json_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)
    return body


def raw_get(base_url: str, path: str) -> int:
    """GET `path` exactly as written (httpx would resolve the dot segments itself)."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def down(descriptor: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A gateway whose only upstream (user) is a port where nothing listens."""
    options = gateway_options(descriptor, (user_upstream(descriptor, free_port()),))
    with (
        running_gateway(tmp_path_factory.mktemp("down"), options) as url,
        httpx.Client(base_url=url, timeout=DEADLINE) as client,
    ):
        yield client


def test_healthz_is_503_json_while_an_upstream_is_down(down: httpx.Client) -> None:
    assert_json_error(down.get("/healthz"), 503, 14)


def test_readyz_is_200_while_envoy_itself_runs(down: httpx.Client) -> None:
    assert down.get("/readyz").status_code == 200


def test_missing_token_is_401_json(down: httpx.Client) -> None:
    response = down.get("/v1/users/me")

    assert assert_json_error(response, 401, 16)["message"] == "Jwt is missing"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["x-request-id"]


def test_garbage_token_is_401_json(down: httpx.Client) -> None:
    assert_json_error(down.get("/v1/users/me", headers={"authorization": "Bearer abc"}), 401, 16)


def test_token_in_the_query_string_is_not_accepted(down: httpx.Client) -> None:
    assert_json_error(down.get("/v1/users/me", params={"access_token": "a.b.c"}), 401, 16)


def test_unknown_paths_need_a_token_before_they_get_404(down: httpx.Client) -> None:
    # Authentication runs before routing: without a token nobody learns which paths exist.
    assert_json_error(down.get("/v1/nope"), 401, 16)
    assert_json_error(down.get("/v1/auth/nope"), 404, 5)


def test_dot_segments_cannot_reach_a_protected_path(down: httpx.Client) -> None:
    base_url = str(down.base_url).rstrip("/")

    assert raw_get(base_url, "/v1/auth/../users/me") == 401
    assert raw_get(base_url, "/v1/auth/%2e%2e/users/me") == 401
    assert raw_get(base_url, "/v1/auth%2F..%2Fusers/me") == 400


def test_preflight_from_an_allowed_origin_is_answered(down: httpx.Client) -> None:
    response = down.options(
        "/v1/users/me",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "GET",
            "access-control-request-headers": "authorization, idempotency-key",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    for header in ("authorization", "content-type", "idempotency-key", "traceparent"):
        assert header in response.headers["access-control-allow-headers"]
    assert "PATCH" in response.headers["access-control-allow-methods"]


def test_preflight_from_another_origin_gets_no_cors_headers(down: httpx.Client) -> None:
    response = down.options(
        "/v1/users/me",
        headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
    )

    assert "access-control-allow-origin" not in response.headers


def test_gateway_errors_are_readable_by_an_allowed_origin(down: httpx.Client) -> None:
    response = down.get("/v1/users/me", headers={"origin": ORIGIN})

    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "grpc-status" in response.headers["access-control-expose-headers"]


def test_body_over_the_limit_is_413_json(down: httpx.Client) -> None:
    body = json.dumps({"email": "a@example.org", "password": "x" * 1_100_000})

    response = down.post("/v1/auth/register", content=body)

    assert_json_error(response, 413, 8)


def test_native_grpc_message_over_the_limit_is_resource_exhausted(
    down: httpx.Client, descriptor: Path
) -> None:
    target = str(down.base_url).removeprefix("http://").rstrip("/")
    register = message_class(descriptor, "medstation.user.v1.RegisterRequest")
    request: bytes = register(display_name="x" * 1_100_000).SerializeToString()
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            f"/{USER}/Register", request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=DEADLINE)

    # As a gRPC server answers a message over its limit; Envoy's own mapping says UNKNOWN.
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_100000_character_note_is_within_the_limit(down: httpx.Client) -> None:
    # Four bytes per character in UTF-8: the largest a 100 000-character note can be.
    note = "\U0001f600" * 100_000
    body = json.dumps({"email": "a@example.org", "password": note}, ensure_ascii=False)

    response = down.post("/v1/auth/register", content=body.encode())

    assert_json_error(response, 503, 14)  # past the limit, to the (dead) user service


@pytest.fixture(scope="module")
def tiny_bucket(
    descriptor: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    options = gateway_options(
        descriptor,
        (user_upstream(descriptor, free_port()),),
        rate_limit_tokens=2,
        rate_limit_fill_per_second=1,
    )
    with (
        running_gateway(tmp_path_factory.mktemp("bucket"), options) as url,
        httpx.Client(base_url=url, timeout=DEADLINE) as client,
    ):
        yield client


def test_rate_limit_answers_429_json(tiny_bucket: httpx.Client) -> None:
    responses = [tiny_bucket.get("/v1/auth/nope") for _ in range(6)]

    limited = [r for r in responses if r.status_code == 429]
    assert limited
    assert_json_error(limited[0], 429, 8)
    assert tiny_bucket.get("/readyz").status_code == 200  # probes are never rate limited


def test_a_429_says_when_to_retry(tiny_bucket: httpx.Client) -> None:
    responses = [tiny_bucket.get("/v1/auth/nope") for _ in range(6)]

    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["x-ratelimit-limit"] == "2"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert all("retry-after" not in r.headers for r in responses if r.status_code != 429)


@pytest.fixture(scope="module")
def per_client_bucket(descriptor: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway with a roomy gateway-wide bucket and a small one per client address."""
    options = gateway_options(
        descriptor,
        (user_upstream(descriptor, free_port()),),
        client_rate_limit_tokens=3,
        client_rate_limit_fill_per_second=1,
    )
    with running_gateway(tmp_path_factory.mktemp("per-client"), options) as url:
        yield url


def client_from(address: str, base_url: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, timeout=DEADLINE, transport=transport)


def test_one_client_using_up_its_bucket_leaves_others_served(per_client_bucket: str) -> None:
    with (
        client_from("127.0.0.1", per_client_bucket) as greedy,
        client_from("127.0.0.2", per_client_bucket) as other,
    ):
        # A forged X-Forwarded-For does not buy a fresh bucket: the TCP peer counts.
        flood = [
            greedy.get("/v1/auth/nope", headers={"x-forwarded-for": f"10.0.0.{i}"}).status_code
            for i in range(8)
        ]
        served = other.get("/v1/auth/nope")

    assert 429 in flood
    assert served.status_code == 404  # past the rate limit, to the transcoder


# --- in front of a fake upstream -------------------------------------------------------------


@dataclass
class Call:
    method: str
    metadata: dict[str, str]
    time_remaining: float | None


@dataclass
class FakeUpstream(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """UserService and SummaryService as the gateway sees them: health, JWKS, canned answers."""

    jwks: bytes
    job: bytes
    calls: list[Call] = field(default_factory=list)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        if service not in (USER, SUMMARY):
            return None
        if method == "WatchSummaryJob":
            return grpc.unary_stream_rpc_method_handler(self._record(method, self._watch))
        return grpc.unary_unary_rpc_method_handler(self._record(method, self._answer(method)))

    def _record(
        self, method: str, behaviour: Callable[[bytes, grpc.ServicerContext], Any]
    ) -> Callable[[bytes, grpc.ServicerContext], Any]:
        def recorded(request: bytes, context: grpc.ServicerContext) -> Any:
            metadata = {key: str(value) for key, value in context.invocation_metadata()}
            self.calls.append(Call(method, metadata, context.time_remaining()))
            return behaviour(request, context)

        return recorded

    def _answer(self, method: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            if method == "GetJwks":
                body = httpbody_pb2.HttpBody(content_type="application/json", data=self.jwks)
                return body.SerializeToString()
            if method == "GetMe":
                context.abort_with_status(rpc_status.to_status(user_not_found()))
            return b""  # the empty message is valid for every response type

        return answer

    def _watch(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in range(3):
            time.sleep(0.1)
            yield self.job


def user_not_found() -> status_pb2.Status:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="USER_NOT_FOUND", domain="medstation.user"))
    return status_pb2.Status(code=code_pb2.NOT_FOUND, message="no such user", details=[info])


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver keeping (service.name, trace id) of every span."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append((attributes["service.name"], span.trace_id.hex()))
        return trace_service_pb2.ExportTraceServiceResponse()


def message_class(descriptor: Path, name: str) -> Any:
    """A message class of the API, from the descriptor set the gateway loads."""
    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString(descriptor.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def summary_job_bytes(descriptor: Path) -> bytes:
    job_class = message_class(descriptor, "medstation.summary.v1.SummaryJob")
    job: bytes = job_class(id="job-1", state="RUNNING").SerializeToString()
    return job


def signing_key() -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    x = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
    jwk = {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "test", "x": x}
    return key, json.dumps({"keys": [jwk]}).encode()


def access_token(key: Ed25519PrivateKey, audience: str = "medstation-api") -> str:
    now = int(time.time())
    claims: dict[str, object] = {"iss": "medstation", "aud": audience, "sub": "u-1"}
    claims |= {"iat": now, "nbf": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "test"})


@contextlib.contextmanager
def grpc_server(register: Callable[[grpc.Server], None]) -> Iterator[int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)]
    )
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait()


def serve_upstream(upstream: FakeUpstream) -> Callable[[grpc.Server], None]:
    def register(server: grpc.Server) -> None:
        server.add_generic_rpc_handlers((upstream,))
        checks = health.HealthServicer()
        for service in (USER, SUMMARY):
            checks.set(service, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checks, server)

    return register


def serve_collector(collector: Collector) -> Callable[[grpc.Server], None]:
    def register(server: grpc.Server) -> None:
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)

    return register


@dataclass
class Live:
    client: httpx.Client
    grpc_target: str
    token: str
    upstream: FakeUpstream
    collector: Collector
    key: Ed25519PrivateKey  # signs the tokens the gateway trusts

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {DEADLINE} s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def live(descriptor: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    key, jwks = signing_key()
    upstream, collector = FakeUpstream(jwks, summary_job_bytes(descriptor)), Collector()
    with (
        grpc_server(serve_upstream(upstream)) as upstream_port,
        grpc_server(serve_collector(collector)) as collector_port,
    ):
        summary = gateway_config.upstream_from_descriptor(
            "summary", SUMMARY, "127.0.0.1", upstream_port, str(descriptor)
        )
        options = gateway_options(
            descriptor,
            (user_upstream(descriptor, upstream_port), summary),
            otlp_endpoint=f"http://127.0.0.1:{collector_port}",
        )
        with (
            running_gateway(tmp_path_factory.mktemp("live"), options) as url,
            httpx.Client(base_url=url, timeout=DEADLINE) as client,
        ):
            target = f"127.0.0.1:{options.listen_port}"
            yield Live(client, target, access_token(key), upstream, collector, key)


@pytest.fixture
def keys_fetched(live: Live) -> Live:
    """The gateway fetched the JWKS (asynchronously, through itself) and accepts tokens."""
    wait_until(
        lambda: live.client.get("/v1/users/me", headers=live.auth()).status_code != 401,
        "the gateway accepting a valid token",
    )
    return live


def test_healthz_is_200_when_every_upstream_serves(live: Live) -> None:
    wait_until(lambda: live.client.get("/healthz").status_code == 200, "/healthz 200")


def test_service_errors_keep_their_details(keys_fetched: Live) -> None:
    response = keys_fetched.client.get("/v1/users/me", headers=keys_fetched.auth())

    body = assert_json_error(response, 404, 5)
    assert body["message"] == "no such user"
    assert body["details"][0]["reason"] == "USER_NOT_FOUND"


def test_the_service_gets_the_token_and_a_deadline_but_no_spoofed_headers(
    keys_fetched: Live,
) -> None:
    spoof = {"x-envoy-original-path": "/spoofed", "x-envoy-internal": "true"}
    keys_fetched.client.get("/v1/users/me", headers=keys_fetched.auth() | spoof)

    # The gateway may refetch its JWKS at any moment: pick our call, not the last one.
    call = next(call for call in reversed(keys_fetched.upstream.calls) if call.method == "GetMe")
    assert call.metadata["authorization"] == f"Bearer {keys_fetched.token}"
    assert call.metadata["x-envoy-original-path"] == "/v1/users/me"
    assert "x-envoy-internal" not in call.metadata
    assert call.time_remaining is not None
    assert 0 < call.time_remaining <= 15


def test_unknown_rest_path_is_404_json(keys_fetched: Live) -> None:
    assert_json_error(keys_fetched.client.get("/v1/nope", headers=keys_fetched.auth()), 404, 5)


def test_server_stream_arrives_as_one_json_object_per_line(keys_fetched: Live) -> None:
    path = "/v1/summary-jobs/00000000-0000-0000-0000-000000000001:watch"
    with keys_fetched.client.stream("GET", path, headers=keys_fetched.auth()) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]

    assert response.status_code == 200
    assert [line["state"] for line in lines] == ["RUNNING"] * 3


def grpc_code(target: str, path: str, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    """The status a raw call of `path` ends with (request and response as plain bytes)."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as raised:
            call(b"", metadata=metadata, timeout=DEADLINE)
    code: grpc.StatusCode = raised.value.code()
    return code


def test_grpc_reflection_and_health_are_not_served_at_the_gateway(keys_fetched: Live) -> None:
    token = (("authorization", f"Bearer {keys_fetched.token}"),)

    for path in (
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ):
        assert grpc_code(keys_fetched.grpc_target, path, token) == grpc.StatusCode.UNIMPLEMENTED
        assert grpc_code(keys_fetched.grpc_target, path, ()) == grpc.StatusCode.UNAUTHENTICATED


def test_a_token_for_another_audience_is_unauthenticated_for_rest_and_grpc(
    keys_fetched: Live,
) -> None:
    token = access_token(keys_fetched.key, audience="another-api")

    response = keys_fetched.client.get("/v1/users/me", headers={"authorization": f"Bearer {token}"})
    code = grpc_code(
        keys_fetched.grpc_target, f"/{USER}/GetMe", (("authorization", f"Bearer {token}"),)
    )

    assert_json_error(response, 401, 16)
    assert code == grpc.StatusCode.UNAUTHENTICATED  # not Envoy's PERMISSION_DENIED for a 403


def test_native_grpc_callers_get_plain_status_messages(live: Live) -> None:
    with grpc.insecure_channel(live.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)

    assert raised.value.details() == "Jwt is missing"


def test_the_trace_continues_through_the_gateway(keys_fetched: Live) -> None:
    for _ in range(3):  # enough spans for the tracer to export at once
        keys_fetched.client.get(
            "/v1/users/me", headers=keys_fetched.auth() | {"traceparent": TRACEPARENT}
        )

    call = next(call for call in reversed(keys_fetched.upstream.calls) if call.method == "GetMe")
    upstream_trace = call.metadata["traceparent"].split("-")
    assert upstream_trace[1] == TRACE_ID
    assert upstream_trace[2] != TRACEPARENT.split("-")[2]  # parented by the gateway's span
    wait_until(
        lambda: ("gateway", TRACE_ID) in keys_fetched.collector.spans,
        "the gateway's spans at the collector",
    )
