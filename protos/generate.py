"""Generate the Python API package and Envoy's descriptor set from protos/.

Writes, under the output root (the repository by default):
  libs/api/medstation/<domain>/v1/*_pb2.py, *_pb2.pyi, *_pb2_grpc.py, *_pb2_grpc.pyi
  libs/api/buf/validate/validate_pb2.py, validate_pb2.pyi  (protovalidate imports it)
  gateway/generated/medstation_api.binpb                   (for Envoy's gRPC-JSON transcoder)

The same inputs always give byte-identical outputs, so the drift test can regenerate into a
temporary root (`--out`) and compare.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTOS = REPO / "protos"
THIRD_PARTY = PROTOS / "third_party"
VALIDATE_DESCRIPTOR_SET = THIRD_PARTY / "buf" / "validate" / "validate.binpb"
VALIDATE_PROTO = "buf/validate/validate.proto"

API_DIR = Path("libs/api")
# Every top-level package that generation owns; each is deleted and rebuilt on every run.
API_PACKAGES = ("medstation", "buf")
DESCRIPTOR_SET = Path("gateway/generated/medstation_api.binpb")
# Envoy renders error details and raw bodies only for types its descriptor set contains.
ENVOY_EXTRA_PROTOS = (
    "google/api/httpbody.proto",
    "google/rpc/error_details.proto",
    "google/rpc/status.proto",
)


def service_protos(protos: Path = PROTOS) -> list[str]:
    """Return our .proto files as import paths, sorted so protoc sees a stable order."""
    return sorted(
        path.relative_to(protos).as_posix() for path in protos.glob("medstation/**/*.proto")
    )


def plugin(name: str) -> str:
    """Point protoc at a plugin installed beside this interpreter, found without PATH."""
    return (
        f"--plugin=protoc-gen-{name}={Path(sysconfig.get_path('scripts')) / f'protoc-gen-{name}'}"
    )


def protoc(arguments: Sequence[str], protos: Path = PROTOS) -> None:
    """Run the protoc bundled with grpcio-tools, which also adds the well-known types.

    protos is a protos/ tree (ours by default) with its vendored third_party/ beside the sources.
    """
    third_party = protos / THIRD_PARTY.relative_to(PROTOS)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--descriptor_set_in={protos / VALIDATE_DESCRIPTOR_SET.relative_to(PROTOS)}",
        f"--proto_path={protos}",
        f"--proto_path={third_party}",
        *arguments,
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"protoc failed:\n{result.stderr}")


def generate_python(api: Path) -> None:
    """Write message modules and stubs for every file, service modules and stubs for ours."""
    api.mkdir(parents=True)
    protoc(
        [
            plugin("mypy"),
            f"--python_out={api}",
            f"--mypy_out=quiet:{api}",
            *service_protos(),
            VALIDATE_PROTO,
        ]
    )
    protoc(
        [
            plugin("mypy_grpc"),
            f"--grpc_python_out={api}",
            f"--mypy_grpc_out=quiet:{api}",
            *service_protos(),
        ]
    )
    for package in API_PACKAGES:
        root = api / package
        for directory in [root, *(path for path in root.rglob("*") if path.is_dir())]:
            (directory / "__init__.py").touch()
        # PEP 561: the stubs above are what type checkers read for these packages.
        (root / "py.typed").touch()


def build_image(target: Path, protos: Path = PROTOS, extra: Sequence[str] = ()) -> None:
    """Write a self-contained descriptor set with source comments, which buf reads as an image."""
    target.parent.mkdir(parents=True, exist_ok=True)
    protoc(
        [
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={target}",
            *service_protos(protos),
            *extra,
        ],
        protos,
    )


def replace_tree(source: Path, target: Path) -> None:
    """Make target an exact copy of source, so files of deleted protos disappear too."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def generate(out: Path) -> None:
    """Generate everything into a scratch directory first, then swap it into out."""
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch)
        generate_python(staged / API_DIR)
        build_image(staged / DESCRIPTOR_SET, extra=ENVOY_EXTRA_PROTOS)
        for package in API_PACKAGES:
            replace_tree(staged / API_DIR / package, out / API_DIR / package)
        (out / DESCRIPTOR_SET).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged / DESCRIPTOR_SET, out / DESCRIPTOR_SET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO,
        help="root to write libs/api/... and gateway/generated/... under (default: the repo)",
    )
    generate(parser.parse_args().out.resolve())


if __name__ == "__main__":
    main()
