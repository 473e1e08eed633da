"""Running a load tool (wrk, h2load) to its end, bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

# A load tool stops itself after its measured time; this much longer and it is stuck.
RUN_GRACE_SECONDS = 30.0


async def run_to_end(command: Sequence[str], *, seconds: float, error: type[Exception]) -> str:
    """The tool's output (stdout and stderr). `error` when it runs `seconds` plus the grace
    period, or exits non-zero, its message naming the tool and ending with its output."""
    tool = command[0].rsplit("/", 1)[-1]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    limit = seconds + RUN_GRACE_SECONDS
    try:
        output, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise error(f"{tool} did not finish within {limit:g} s") from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise error(f"{tool} exited with {process.returncode}:\n{text[-3000:]}")
    return text
