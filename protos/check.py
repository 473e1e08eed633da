"""Lint the protos and check them for breaking changes against a git branch (main by default).

buf cannot compile protos/ itself because buf/validate/validate.proto exists here only as a
descriptor set, so both checks run on images built by protoc (see generate.py), configured by
the repository's buf.yaml. Exits non-zero on any finding.

Run from anywhere: `.venv/bin/python protos/check.py [--against BRANCH]`.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

from generate import PROTOS, REPO, build_image

BUF_CONFIG = REPO / "buf.yaml"
# Limits findings to our files: the image also holds every import (google/*, buf/*).
OUR_FILES = "medstation"


def buf(*arguments: str) -> bool:
    """Run the buf from this interpreter's environment; return whether it found nothing."""
    executable = Path(sysconfig.get_path("scripts")) / "buf"
    command = [str(executable), *arguments, "--config", str(BUF_CONFIG), "--path", OUR_FILES]
    return subprocess.run(command, check=False, cwd=REPO).returncode == 0


def git(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    """Run git on this repository, capturing its output; the caller judges the exit code."""
    executable = shutil.which("git")
    if executable is None:
        sys.exit("git is not installed")
    return subprocess.run(
        [executable, "-C", str(REPO), *arguments], check=False, capture_output=True
    )


def lint(image: Path) -> bool:
    """Apply buf.yaml's lint rules to our files in the image."""
    print("buf lint", flush=True)
    return buf("lint", str(image))


def protos_on_branch(branch: str, destination: Path) -> Path | None:
    """Extract protos/ as committed on branch into destination; None when there is none yet."""
    listing = git("ls-tree", "-r", "--name-only", branch, "--", "protos/medstation")
    if listing.returncode != 0:
        sys.exit(f"git ls-tree {branch} failed:\n{listing.stderr.decode()}")
    if not listing.stdout.strip():
        return None
    archive = git("archive", "--format=tar", branch, "protos")
    if archive.returncode != 0:
        sys.exit(f"git archive {branch} failed:\n{archive.stderr.decode()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(destination, filter="data")
    return destination / PROTOS.relative_to(REPO)


def breaking(image: Path, branch: str, scratch: Path) -> bool:
    """Compare our files in the image with the same files as committed on branch."""
    print(f"buf breaking against {branch}", flush=True)
    if git("rev-parse", "--verify", "--quiet", f"{branch}^{{commit}}").returncode != 0:
        print(f"skipped: there is no commit on branch {branch!r} yet", flush=True)
        return True
    against_protos = protos_on_branch(branch, scratch / "against")
    if against_protos is None:
        print(f"skipped: branch {branch!r} has no protos/medstation yet", flush=True)
        return True
    against = scratch / "against.binpb"
    build_image(against, against_protos)
    return buf("breaking", str(image), "--against", str(against))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="main", help="git branch to compare with")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        image = scratch / "image.binpb"
        build_image(image)
        results = [lint(image), breaking(image, arguments.against, scratch)]
    if not all(results):
        sys.exit(1)
    print("protos: lint clean, no breaking changes")


if __name__ == "__main__":
    main()
