from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.health import wait_for_grpc_health_async
from devstack.ports import free_port
from devstack.process_runner import ProcessRunner
from devstack.supervisor import ProcessSpec, RestartPolicy, StartupError, Supervisor

FAST = RestartPolicy(initial_delay=0.05, max_delay=0.2, stable_after=30.0)
SLEEPER_SCRIPT = Path(__file__).with_name("supervised_sleeper.py")


def _python(code: str, name: str) -> ProcessSpec:
    return ProcessSpec(name, (sys.executable, "-c", code), dict(os.environ))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


GiveUp = Callable[[], str | None]


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110  # the state changes in another process
            await asyncio.sleep(0.02)


async def test_crashed_child_is_restarted_with_growing_delay(tmp_path: Path) -> None:
    console = io.StringIO()
    supervisor = Supervisor(tmp_path, console=console, policy=FAST)
    await supervisor.start(_python("print('tick'); raise SystemExit(3)", "crasher"))

    await _until(lambda: supervisor.starts("crasher") >= 4)
    await supervisor.stop()

    output = console.getvalue()
    assert "crasher    | tick" in output
    assert "exited with code 3" in output
    restarts = [line for line in output.splitlines() if "restarting in" in line]
    delays = [line.split("restarting in ")[1] for line in restarts]
    assert delays[:3] == ["0.05 s", "0.1 s", "0.2 s"]
    assert (tmp_path / "crasher.log").read_text().count("tick") >= 4


async def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring', flush=True); time.sleep(600)"
    )
    supervisor = Supervisor(tmp_path, console=io.StringIO(), grace_seconds=0.3)
    log = tmp_path / "stubborn.log"

    async def printed_ignoring(_give_up: GiveUp) -> None:
        await _until(lambda: "ignoring" in log.read_text())

    spec = _python(code, "stubborn")
    await supervisor.start(ProcessSpec(spec.name, spec.argv, spec.env, ready=printed_ignoring))
    started = time.monotonic()
    await supervisor.stop()

    assert time.monotonic() - started < 5
    assert supervisor.starts("stubborn") == 1


async def test_start_fails_with_the_log_tail_when_the_child_dies(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, console=io.StringIO())
    address = f"127.0.0.1:{free_port()}"

    async def healthy(give_up: GiveUp) -> None:
        await wait_for_grpc_health_async(address, "", 30, give_up)

    spec = _python("print('bad config: MEDSTATION_GRPC_PORT'); raise SystemExit(2)", "broken")

    with pytest.raises(StartupError, match="exited with code 2") as raised:
        await supervisor.start(ProcessSpec(spec.name, spec.argv, spec.env, ready=healthy))
    assert "bad config: MEDSTATION_GRPC_PORT" in str(raised.value)
    await supervisor.stop()


def test_sigterm_stops_the_children_and_exits_zero(
    process_runner: ProcessRunner, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    driver = process_runner.start(
        "supervisor", [sys.executable, str(SLEEPER_SCRIPT), str(tmp_path / "logs"), str(pid_file)]
    )
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text():
        assert driver.alive(), driver.log_tail()
        assert time.monotonic() < deadline, "child never started"
        time.sleep(0.02)
    child_pid = int(pid_file.read_text())

    driver.popen.send_signal(signal.SIGTERM)

    assert driver.popen.wait(timeout=15) == 0, driver.log_tail()
    assert _gone(child_pid)


async def test_output_is_relayed_whole_lines_in_order_however_it_arrives(tmp_path: Path) -> None:
    # Lines come split across writes, hundreds in one write, and the last without a
    # newline: each is relayed once, whole, in order, to the console and the log file.
    code = (
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'first ha'); out.flush(); time.sleep(0.2)\n"
        "out.write(b'lf\\n'); out.flush()\n"
        "out.write(b''.join(b'line %d caf\\xc3\\xa9\\n' % n for n in range(500))); out.flush()\n"
        "out.write(b'\\xc3'); out.flush(); time.sleep(0.2); out.write(b'\\xa9 split\\n')\n"
        "out.write(b'last, no newline'); out.flush()\n"
    )
    console = io.StringIO()
    supervisor = Supervisor(tmp_path, console=console, policy=FAST)
    await supervisor.start(_python(code, "chatty"))
    await _until(lambda: "last, no newline" in console.getvalue())
    await supervisor.stop()

    expected = [
        "first half",
        *(f"line {n} café" for n in range(500)),
        "é split",
        "last, no newline",
    ]
    relayed = [line for line in console.getvalue().splitlines() if line.startswith("chatty ")]
    assert relayed[: len(expected)] == [f"chatty     | {line}" for line in expected]
    logged = (tmp_path / "chatty.log").read_text(encoding="utf-8").splitlines()
    start = logged.index("first half")  # after the "started" line, which shows the code
    assert logged[start : start + len(expected)] == expected
