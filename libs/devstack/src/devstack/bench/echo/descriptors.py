"""The echo service's protobuf types, compiled when the bench runs: nothing is generated
into the repository, so there is no second copy of echo.proto to keep in step.

grpcio-tools' protoc turns echo.proto (with its imports) into a FileDescriptorSet in the
bench's temporary directory. The echo server and the bench's gRPC client build message
classes from it; the echo gateway's transcoder gets MedStation's descriptor set with the
echo files added, because that gateway must still transcode the user service's GetJwks,
where its JWT filter fetches the keys that verify the bench's real access token.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

PACKAGE = "medstation.bench.echo.v1"
ECHO_SERVICE = f"{PACKAGE}.EchoService"
ECHO_METHOD = "Echo"
ECHO_PATH = f"/{ECHO_SERVICE}/{ECHO_METHOD}"
PROTO_FILE = Path(__file__).with_name("echo.proto")
# Vendored google/api protos (see protos/README): the http annotation echo.proto uses.
THIRD_PARTY_PROTOS = Path("protos") / "third_party"
_PROTOC_TIMEOUT_SECONDS = 60


class EchoCompileError(RuntimeError):
    """protoc refused echo.proto; the message has its output."""


@dataclass(frozen=True)
class EchoTypes:
    request: type[Message]
    response: type[Message]

    def request_bytes(self, text: str) -> bytes:
        return self.request(message=text).SerializeToString()


def compile_echo(out_dir: Path, repo_root: Path) -> Path:
    """echo.proto and its imports as a FileDescriptorSet file in `out_dir`."""
    out = out_dir / "echo.binpb"
    command = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTO_FILE.parent}", f"-I{repo_root / THIRD_PARTY_PROTOS}",
        "--include_imports", f"--descriptor_set_out={out}", PROTO_FILE.name,
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=_PROTOC_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        raise EchoCompileError(f"protoc failed on {PROTO_FILE}:\n{result.stdout}{result.stderr}")
    return out


def merged_descriptor_set(paths: list[Path], out: Path) -> Path:
    """One FileDescriptorSet with every file of `paths` once, in order (imports first)."""
    merged = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()
    for path in paths:
        for file in read_descriptor_set(path).file:
            if file.name not in seen:
                seen.add(file.name)
                merged.file.append(file)
    out.write_bytes(merged.SerializeToString())
    return out


def read_descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    descriptor_set.ParseFromString(path.read_bytes())
    return descriptor_set


def echo_types(descriptor_set: Path) -> EchoTypes:
    """EchoRequest and EchoResponse classes built from a compiled descriptor set."""
    pool = descriptor_pool.DescriptorPool()
    for file in read_descriptor_set(descriptor_set).file:
        pool.Add(file)

    def message_class(name: str) -> type[Message]:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))

    return EchoTypes(message_class("EchoRequest"), message_class("EchoResponse"))


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed), as sent in an HTTP/2 DATA frame."""
    return b"\x00" + len(message).to_bytes(4, "big") + message
