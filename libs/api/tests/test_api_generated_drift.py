"""The committed generated code must be exactly what protos/generate.py makes from protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
GENERATED_TREES = ("libs/api/medstation", "libs/api/buf")
GENERATED_FILES = ("gateway/generated/medstation_api.binpb",)


def generated_files(root: Path) -> dict[str, bytes]:
    """Map each generated file's repository path to its bytes, ignoring bytecode caches."""
    files = {name: (root / name).read_bytes() for name in GENERATED_FILES if (root / name).exists()}
    for tree in GENERATED_TREES:
        for path in sorted((root / tree).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def test_committed_generated_code_matches_protos(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "protos" / "generate.py"), "--out", str(tmp_path)],
        check=True,
    )
    fresh = generated_files(tmp_path)
    committed = generated_files(REPO)

    stale = sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )

    assert fresh, "generate.py produced nothing"
    assert not stale, (
        "generated code differs from protos/: run `make proto` "
        f"(.venv/bin/python protos/generate.py) and commit the result. Differing: {stale}"
    )
