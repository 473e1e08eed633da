"""Re-create every file under protos/third_party/ from pinned Python packages.

The buf registry is unreachable from our machines, so the Google protos we import are
copied from the installed `googleapis-common-protos` wheel, and buf's
`buf/validate/validate.proto` (published on no registry as source) is rebuilt as a
FileDescriptorSet from the descriptor bytes embedded in the `protovalidate==2.1.0` wheel.

Run from the repository root: `.venv/bin/python protos/third_party/vendor.py`.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from google.protobuf import descriptor_pb2

THIRD_PARTY = Path(__file__).resolve().parent

# Only the Google protos our services import, plus what those import in turn.
GOOGLE_PROTOS = (
    "google/api/annotations.proto",
    "google/api/client.proto",
    "google/api/field_behavior.proto",
    "google/api/http.proto",
    "google/api/httpbody.proto",
    "google/api/launch_stage.proto",
    "google/api/resource.proto",
    "google/rpc/code.proto",
    "google/rpc/error_details.proto",
    "google/rpc/status.proto",
)
GOOGLEAPIS_DISTRIBUTION = "googleapis-common-protos"
GOOGLEAPIS_VERSION = "1.76.0"

PROTOVALIDATE_REQUIREMENT = "protovalidate==2.1.0"
VALIDATE_PB_MEMBER = "protovalidate/_gen/buf/validate/validate_pb.py"
VALIDATE_PROTO_NAME = "buf/validate/validate.proto"
VALIDATE_OUTPUT = THIRD_PARTY / "buf" / "validate" / "validate.binpb"


def vendor_google_protos() -> None:
    """Copy the pinned wheel's .proto sources, refusing any other installed version."""
    installed = metadata.version(GOOGLEAPIS_DISTRIBUTION)
    if installed != GOOGLEAPIS_VERSION:
        sys.exit(f"{GOOGLEAPIS_DISTRIBUTION} {installed} is installed, {GOOGLEAPIS_VERSION} pinned")
    distribution = metadata.distribution(GOOGLEAPIS_DISTRIBUTION)
    for name in GOOGLE_PROTOS:
        source = Path(str(distribution.locate_file(name)))
        target = THIRD_PARTY / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def download_protovalidate_wheel(directory: Path) -> Path:
    """Fetch the protovalidate wheel with pip, the registry's ordinary client."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            PROTOVALIDATE_REQUIREMENT,
            "-d",
            str(directory),
        ],
        check=True,
    )
    (wheel,) = directory.glob("protovalidate-*.whl")
    return wheel


def serialized_validate_descriptor(wheel: Path) -> bytes:
    """Return the bytes literal passed to `file_desc(...)` in the generated module."""
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(VALIDATE_PB_MEMBER).decode()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "file_desc":
            value = ast.literal_eval(node.args[0])
            if isinstance(value, bytes):
                return value
    sys.exit(f"no file_desc(b'...') call found in {VALIDATE_PB_MEMBER}")


def vendor_validate_descriptor(wheel: Path) -> None:
    """Write validate.proto as a one-file FileDescriptorSet for protoc --descriptor_set_in."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(serialized_validate_descriptor(wheel))
    if proto.name != VALIDATE_PROTO_NAME:
        sys.exit(f"expected {VALIDATE_PROTO_NAME}, the wheel describes {proto.name}")
    descriptor_set = descriptor_pb2.FileDescriptorSet(file=[proto])
    VALIDATE_OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    VALIDATE_OUTPUT.write_bytes(descriptor_set.SerializeToString(deterministic=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheel", type=Path, help="use this protovalidate wheel instead of downloading it"
    )
    args = parser.parse_args()
    vendor_google_protos()
    if args.wheel is not None:
        vendor_validate_descriptor(args.wheel)
        return
    with tempfile.TemporaryDirectory() as directory:
        vendor_validate_descriptor(download_protovalidate_wheel(Path(directory)))


if __name__ == "__main__":
    main()
