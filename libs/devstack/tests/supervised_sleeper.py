"""A supervisor with one long-sleeping child, run as its own process by the SIGTERM test.

argv: <log dir> <pid file>. The child writes its pid to <pid file>, then sleeps.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from devstack.supervisor import ProcessSpec, Supervisor

CHILD = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"


async def main(log_dir: Path, pid_file: Path) -> int:
    supervisor = Supervisor(log_dir, grace_seconds=5.0)
    supervisor.install_signal_handlers()
    await supervisor.start(ProcessSpec("sleeper", (sys.executable, "-c", CHILD, str(pid_file)), {}))
    await supervisor.wait_for_stop_request()
    await supervisor.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]))))
