"""`python -m devstack run | traces | trace-sink | seed | bench` — what `make run`, `make traces`,
`make seed` and `make bench` call."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack import gateway_config, seed, traces_view
from devstack.bench import cli as bench_cli
from devstack.postgres import admin_url_from_env
from devstack.redis import redis_url_from_env
from devstack.stack import StackConfig, run_stack
from devstack.trace_sink import DEFAULT_SINK_PORT, SinkPortInUseError, serve_until_signalled

DEFAULT_TRACES_FILE = Path(".run") / "traces.jsonl"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(arguments)
    command: str = args.command
    if command == "run":
        return _run()
    if command == "seed":
        return seed.run(args)
    if command == "bench":
        # The report quotes the exact command line that produced it.
        return bench_cli.run(args, arguments[1:])
    if command == "traces":
        return _traces(args.file, args.limit, args.trace)
    return _trace_sink(args.host, args.port, args.out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the whole system locally until Ctrl-C")
    traces = commands.add_parser("traces", help="print recent traces as waterfalls")
    traces.add_argument("-n", "--limit", type=int, default=5, help="how many (default 5)")
    traces.add_argument("--trace", help="only the trace with this id (or id prefix)")
    traces.add_argument("--file", type=Path, default=DEFAULT_TRACES_FILE)
    sink = commands.add_parser("trace-sink", help="receive OTLP/gRPC spans into a JSONL file")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=DEFAULT_SINK_PORT)
    sink.add_argument("--out", type=Path, default=DEFAULT_TRACES_FILE)
    seed.add_arguments(
        commands.add_parser("seed", help="load the demo data set into a running stack")
    )
    bench_cli.add_arguments(
        commands.add_parser(
            "bench",
            help="benchmark the stack (a running one, or one it starts), write docs/benchmarks.md",
        )
    )
    return parser


def _run() -> int:
    config = StackConfig(
        repo_root=gateway_config.repo_root(),
        postgres_admin_url=admin_url_from_env(),
        redis_url=redis_url_from_env(),
    )
    return asyncio.run(run_stack(config))


def _traces(path: Path, limit: int, trace_id: str | None) -> int:
    traces = traces_view.load_traces(path)
    chosen = (
        traces_view.matching(traces, trace_id, linked=True)
        if trace_id
        else traces_view.latest(traces, limit)
    )
    if not chosen:
        wanted = f"trace {trace_id}" if trace_id else "traces"
        print(f"no {wanted} in {path} (is `make run` running, and has a request been made?)")
        return 1 if trace_id else 0
    print(traces_view.render(chosen, everything=traces))
    return 0


def _trace_sink(host: str, port: int, out: Path) -> int:
    try:
        asyncio.run(serve_until_signalled(host, port, out))
    except SinkPortInUseError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
