"""Freed large blocks go back to the OS (medstation_platform.memory), measured in a
process of their own: eight threads each allocate and free 19 MiB three times, as the user
service's hashing threads do for argon2id."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import sys, threading
from medstation_platform.memory import return_freed_large_blocks

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "set":
    assert return_freed_large_blocks()
start = rss_mib()
barrier = threading.Barrier(8)

def hash_like():
    barrier.wait()
    for _ in range(3):
        buffer = bytearray(19 * 2**20)  # zero-filled: every page touched
        del buffer

threads = [threading.Thread(target=hash_like) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(rss_mib() - start)
"""


def _growth_mib(mode: str) -> float:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return float(run.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_freed_large_blocks_leave_no_resident_memory() -> None:
    assert _growth_mib("set") < 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_without_it_glibc_keeps_them() -> None:
    # The control: what the setting prevents (8 threads x 19 MiB is 152 MiB).
    assert _growth_mib("default") > 50
