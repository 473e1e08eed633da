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


_GC_PROBE = """
import gc, sys, weakref
from medstation_platform.memory import collect_garbage_for_throughput

class Node:
    pass

collect_garbage_for_throughput(*map(int, sys.argv[1:]))
young, middle, oldest = gc.get_threshold()
frozen = gc.get_freeze_count()
node = Node()
node.self = node  # a cycle: only the collector can free it
alive = weakref.ref(node)
del node
gc.collect()
print(young, middle, oldest, frozen, alive() is None)
"""


def _after_tuning(*young_threshold: int) -> list[str]:
    argv = [sys.executable, "-c", _GC_PROBE, *map(str, young_threshold)]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


def test_tuning_the_collector_freezes_the_start_up_objects_and_collects_rarely() -> None:
    young, middle, oldest, frozen, cycle_freed = _after_tuning()

    assert int(young) == 20_000  # instead of Python's 700
    assert (int(middle), int(oldest)) == (10, 10)  # the older generations keep Python's
    assert int(frozen) > 1000  # modules, classes, functions: out of the collector's sight
    assert cycle_freed == "True"  # cyclic garbage made later is still collected


def test_the_young_generation_threshold_can_be_chosen() -> None:
    assert int(_after_tuning(5_000)[0]) == 5_000
