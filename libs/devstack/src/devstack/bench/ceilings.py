"""The echo ceilings: the bench's echo service started beside the stack and measured
directly (h2load, and the bench's own grpc.aio generator to show that generator's limit)
and as REST through a second Envoy rendered from the gateway's template.

That second gateway is the stack's config in all but its upstreams: it routes the echo
service and the stack's user service, because its JWT filter fetches the signing keys
from its own listener (`/.well-known/jwks.json`, transcoded to UserService.GetJwks)
exactly as the stack's gateway does. So the bench's real access token is verified on
every echo request and the filter chain is the same. It is rendered with the environment
of the stack's own services (tracing endpoint and sampling, JWT issuer and audience, read
from /proc when the user service runs here) and a rate limit no run reaches, which is
what the bench asks of the stack it measures too (bench.own_stack).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import grpc.aio
import httpx
from google.protobuf.message import Message

from devstack import envoy, gateway_config
from devstack.bench import cpu, cpu_groups
from devstack.bench.baselines import (
    ECHO_DIRECT,
    ECHO_DIRECT_GRPC_AIO,
    ECHO_GATEWAY,
    BaselineResult,
    LoadRun,
    measure_levels,
)
from devstack.bench.echo.descriptors import (
    ECHO_METHOD,
    ECHO_PATH,
    ECHO_SERVICE,
    EchoCompileError,
    EchoTypes,
    compile_echo,
    echo_types,
    grpc_frame,
    merged_descriptor_set,
)
from devstack.bench.grpc_load import run_grpc_load
from devstack.bench.h2load import run_h2load
from devstack.bench.load_stats import LoadStats
from devstack.bench.plan import RunPlan
from devstack.bench.processes import process_listening_on
from devstack.bench.wrk import HttpRequest, run_wrk
from devstack.health import NotReadyError, wait_for_grpc_health_async, wait_for_http_ok
from devstack.ports import free_port
from devstack.process_runner import ProcessRunner
from devstack.services import service_by_key

LOCAL_HOST = "127.0.0.1"
ECHO_UPSTREAM = "echo"
ECHO_TEXT = "hello"
ECHO_GATEWAY_NAME = "echo-gateway"
# A bucket no run empties: the limiter still runs on every request.
UNREACHED_RATE_LIMIT = 1_000_000
_READY_SECONDS = 30.0
_POLL_SECONDS = 0.1
_CALL_TIMEOUT_SECONDS = 10.0

TokenSource = Callable[[], Awaitable[str]]
Log = Callable[[str], None]


class CeilingUnavailable(RuntimeError):
    """The echo service or its gateway did not come up; the message says why."""


@dataclass(frozen=True)
class EchoStack:
    types: EchoTypes
    address: str  # the echo service, host:port
    gateway_url: str


@dataclass(frozen=True)
class Tools:
    """The load generators found on this machine (None: not installed)."""

    wrk: str | None
    h2load: str | None


def echo_gateway_options(
    user_addr: str,
    echo_port: int,
    descriptor_path: Path,
    env: Mapping[str, str],
    *,
    listen_port: int,
    admin_port: int,
) -> gateway_config.GatewayOptions:
    """The gateway template's options for the echo, the stack's user service beside it."""
    host, _, port = user_addr.rpartition(":")
    user = gateway_config.upstream_from_descriptor(
        "user", service_by_key("user").proto_service, host, int(port), str(descriptor_path)
    )
    # Routed like GetPatient: an idempotent read, retried on another host if one fails.
    echo = gateway_config.Upstream(
        ECHO_UPSTREAM, ECHO_SERVICE, LOCAL_HOST, echo_port, read_methods=(ECHO_METHOD,)
    )
    options = gateway_config.options_from_env((user, echo), str(descriptor_path), env)
    return replace(
        options,
        listen_port=listen_port,
        admin_port=admin_port,
        service_name=ECHO_GATEWAY_NAME,
        rate_limit_tokens=UNREACHED_RATE_LIMIT,
        rate_limit_fill_per_second=UNREACHED_RATE_LIMIT,
    )


def stack_environment(user_addr: str) -> Mapping[str, str]:
    """The user service's own environment when it runs here, else ours."""
    image = process_listening_on(user_addr)
    return image.env if image is not None else os.environ


@contextlib.asynccontextmanager
async def echo_stack(
    repo_root: Path, user_addr: str, workdir: Path, token: TokenSource
) -> AsyncIterator[EchoStack]:
    """The echo service and its gateway, up and accepting the bench's token; then stopped."""
    runner = ProcessRunner(workdir)
    gateway: envoy.EnvoyProcess | None = None
    try:
        echo_set, gateway_set = await asyncio.to_thread(_descriptor_sets, workdir, repo_root)
        port = free_port()
        process = runner.start(
            "echo-service",
            [sys.executable, "-m", "devstack.bench.echo.service",
             "--port", str(port), "--descriptor-set", str(echo_set)],
        )  # fmt: skip
        address = f"{LOCAL_HOST}:{port}"

        def exited() -> str | None:
            return None if process.alive() else f"exited:\n{process.log_tail()}"

        await wait_for_grpc_health_async(address, ECHO_SERVICE, _READY_SECONDS, exited)
        options = echo_gateway_options(
            user_addr,
            port,
            gateway_set,
            stack_environment(user_addr),
            listen_port=free_port(),
            admin_port=free_port(),
        )
        config = await asyncio.to_thread(_write_config, workdir / "envoy.yaml", options)
        gateway = await asyncio.to_thread(envoy.start_envoy, config, workdir / "envoy.log")
        gateway_url = f"http://{LOCAL_HOST}:{options.listen_port}"
        await wait_for_http_ok(f"{gateway_url}/healthz", _READY_SECONDS)
        stack = EchoStack(echo_types(echo_set), address, gateway_url)
        await _check_echo(stack, await token())
    except (EchoCompileError, NotReadyError, envoy.EnvoyError) as error:
        raise CeilingUnavailable(str(error)) from error
    try:
        yield stack
    finally:
        if gateway is not None:
            await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(runner.stop_all)


def _descriptor_sets(workdir: Path, repo_root: Path) -> tuple[Path, Path]:
    """The echo's own set (for its server), and MedStation's with it (for the transcoder)."""
    workdir.mkdir(parents=True, exist_ok=True)
    echo_set = compile_echo(workdir, repo_root)
    api_set = gateway_config.default_descriptor_path()
    return echo_set, merged_descriptor_set([api_set, echo_set], workdir / "gateway.binpb")


def _write_config(path: Path, options: gateway_config.GatewayOptions) -> Path:
    path.write_text(gateway_config.render_gateway_config(options), encoding="utf-8")
    return path


async def _check_echo(stack: EchoStack, token: str) -> None:
    """One echo over gRPC (h2load cannot see a gRPC error) and one through the gateway,
    repeated until the gateway has fetched the keys that verify the token."""
    async with grpc.aio.insecure_channel(stack.address) as channel:
        answer = await _echo_call(channel, stack.types)(
            stack.types.request(message=ECHO_TEXT), timeout=_CALL_TIMEOUT_SECONDS
        )
    if answer.SerializeToString() != stack.types.request_bytes(ECHO_TEXT):
        raise CeilingUnavailable(f"the echo service answered {answer!r}")
    url = f"{stack.gateway_url}/v1/echo/{ECHO_TEXT}"
    headers = {"Authorization": f"Bearer {token}"}
    status = None
    async with httpx.AsyncClient(timeout=_CALL_TIMEOUT_SECONDS) as client:
        for _ in range(int(_READY_SECONDS / _POLL_SECONDS)):
            response = await client.get(url, headers=headers)
            status = response.status_code
            if status == httpx.codes.OK:
                return
            await asyncio.sleep(_POLL_SECONDS)
    raise CeilingUnavailable(f"GET {url} through the echo gateway answered {status}")


def _echo_call(
    channel: grpc.aio.Channel, types: EchoTypes
) -> grpc.aio.UnaryUnaryMultiCallable[Message, Message]:
    return channel.unary_unary(
        ECHO_PATH,
        request_serializer=_serialize,
        response_deserializer=types.response.FromString,
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


async def measure_ceilings(
    stack: EchoStack,
    plan: RunPlan,
    tools: Tools,
    token: TokenSource,
    *,
    workdir: Path,
    log: Log,
    skipped: list[str],
) -> list[BaselineResult]:
    """Every level directly (h2load, grpc.aio) and through the echo gateway (wrk)."""
    readers = echo_cpu_readers(stack)
    levels = plan.concurrency

    async def measure(key: str, load: LoadRun) -> None:
        results.extend(
            await measure_levels(
                key,
                levels,
                warmup=plan.warmup,
                duration=plan.duration,
                load=load,
                readers=readers,
                log=log,
            )
        )

    results: list[BaselineResult] = []
    if tools.h2load is None:
        skipped.append("echo direct (h2load): h2load is not installed (`make bench-deps`)")
    else:
        url = f"http://{stack.address}{ECHO_PATH}"
        frame = grpc_frame(stack.types.request_bytes(ECHO_TEXT))
        binary = tools.h2load
        await measure(
            ECHO_DIRECT,
            lambda level, seconds: run_h2load(
                binary, url, frame, concurrency=level, duration=seconds, workdir=workdir
            ),
        )
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = _echo_call(channel, stack.types)
        request = stack.types.request(message=ECHO_TEXT)
        await measure(
            ECHO_DIRECT_GRPC_AIO,
            lambda level, seconds: run_grpc_load(
                lambda _: call(request, timeout=_CALL_TIMEOUT_SECONDS),
                concurrency=level,
                duration=seconds,
                call_timeout=_CALL_TIMEOUT_SECONDS,
            ),
        )
    through_gateway = echo_through_gateway(stack, tools, token, workdir=workdir)
    if through_gateway is None:
        skipped.append("echo through the gateway (wrk): wrk is not installed (`make bench-deps`)")
    else:
        await measure(ECHO_GATEWAY, through_gateway)
    return results


def echo_through_gateway(
    stack: EchoStack, tools: Tools, token: TokenSource, *, workdir: Path
) -> LoadRun | None:
    """wrk calling the echo through its gateway (None without wrk)."""
    if tools.wrk is None:
        return None
    wrk = tools.wrk

    async def through_gateway(level: int, seconds: float) -> LoadStats:
        return await run_wrk(
            wrk,
            stack.gateway_url,
            [HttpRequest("GET", f"/v1/echo/{ECHO_TEXT}")],
            await token(),
            concurrency=level,
            duration=seconds,
            start=0,
            workdir=workdir,
        )

    return through_gateway


def echo_cpu_readers(stack: EchoStack) -> dict[str, cpu.CpuReader]:
    """The echo's gateway and service, as the ceilings' CPU columns read them."""
    return cpu_groups.readers(
        {
            cpu_groups.GATEWAY: [cpu_groups.port_of(stack.gateway_url)],
            cpu_groups.SERVICE: [cpu_groups.address_port(stack.address)],
        }
    )
