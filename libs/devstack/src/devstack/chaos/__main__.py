"""`python -m devstack.chaos [--short] [--scenario NAME] [--out docs/reliability.md]`.

Starts a stack of its own (see devstack.chaos.stack), runs the fault scenarios, prints the
table and writes the report. Exits 0 when every scenario met its requirements.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devstack.chaos.runner import SCENARIOS, document, run


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m devstack.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="less load per scenario")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all"
    )
    parser.add_argument("--out", type=Path, help="write the report (markdown) here")
    parser.add_argument("--workdir", type=Path, help="logs and configs (default: a temp dir)")
    args = parser.parse_args(arguments)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="medstation-chaos-"))
    report = run(workdir, short=args.short, names=args.scenario)
    print(report.text())
    if args.out is not None:
        command = shlex.join(["python", "-m", "devstack.chaos", *_without_workdir(arguments)])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(document(report, command), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0 if report.passed else 1


def _without_workdir(arguments: list[str]) -> list[str]:
    """The command as the report quotes it: where the logs went is of no use to a reader."""
    kept: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--workdir":
            skip = True
        elif not argument.startswith("--workdir="):
            kept.append(argument)
    return kept


if __name__ == "__main__":
    raise SystemExit(main())
