"""The OpenAPI 3.1 description of the REST API, generated from the gateway's descriptor set.

Every `google.api.http` rule (additional bindings too) becomes an operation, exactly as the
gateway's transcoder maps it: path variables are path parameters, a `body: "*"` rule takes
the request's other fields as its JSON body, a `body: "<field>"` rule that field, and every
field left over is a query parameter. Schemas come from openapi_schema. The gateway serves
the committed file at GET /openapi.json;

    python -m devstack.openapi --out gateway/generated/openapi.json

writes it, `--check` exits 1 when the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, http_pb2  # noqa: F401 - registers google.api.http
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from devstack import gateway_config
from devstack.openapi_schema import (
    SCHEMA_REF,
    FieldProto,
    Message,
    ProtoIndex,
    Schema,
    SchemaBuilder,
    is_required,
    option,
)

OPENAPI_RELATIVE_PATH = gateway_config.OPENAPI_RELATIVE_PATH
OPENAPI_VERSION = "3.1.0"
# Reachable without a token: the gateway's jwt_authn rules list the same methods (a test
# compares them), and API.md documents them.
PUBLIC_METHODS = frozenset(
    f"medstation.user.v1.UserService.{name}"
    for name in ("Register", "Login", "Refresh", "Logout", "GetJwks")
)
ERROR_SCHEMA = "google.rpc.Status"
SECURITY_SCHEME = "bearerAuth"
_VERBS = ("get", "put", "post", "delete", "patch")
# A custom rule's kind must be one of these for OpenAPI to describe it.
_OPENAPI_VERBS = (*_VERBS, "head", "options", "trace")
_VARIABLE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")
_INFO_DESCRIPTION = """\
The REST/JSON surface of MedStation's gRPC services, as the gateway transcodes it. \
Generated from the protos (`python -m devstack.openapi`): do not edit.

- Field names are snake_case in responses; requests accept snake_case and lowerCamelCase.
- Enumerated values travel as the strings listed; an unknown value is a 400 naming the field.
- Lists take `page_size` (0 means 50, above 100 means 100, negative is a 400) and \
`page_token` (the previous page's `next_page_token`).
- PATCH bodies carry only the fields to change; `update_mask` lists them, comma-separated.
- Errors are `google.rpc.Status` JSON; `details` carry `google.rpc.ErrorInfo` (a stable \
`reason`) and, for bad input, `google.rpc.BadRequest` naming each offending field.
- Server streams arrive as one JSON object per line.
"""


@dataclass(frozen=True)
class Binding:
    """One HTTP rule of one method."""

    method: descriptor_pb2.MethodDescriptorProto
    service: str  # full name, e.g. medstation.user.v1.UserService
    rule: http_pb2.HttpRule
    comment: str
    operation_id: str

    @property
    def full_method(self) -> str:
        return f"{self.service}.{self.method.name}"


def build_openapi(descriptor_set: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    """The OpenAPI document for every annotated method in the descriptor set."""
    index = ProtoIndex(descriptor_set)
    schemas = SchemaBuilder(index)
    error = schemas.ref(ERROR_SCHEMA)
    paths: dict[str, dict[str, Any]] = {}
    tags: list[dict[str, str]] = []
    for service, comment in _services(index):
        tags.append({"name": service.rsplit(".", 1)[-1], "description": comment})
    for binding in _bindings(index):
        verb, template = _verb_and_template(binding.rule)
        path, variables = openapi_path(template)
        operation = _operation(schemas, binding, variables, verb)
        paths.setdefault(path, {})[verb] = operation
    paths |= _gateway_paths()
    _check_unique_paths(paths)
    # ErrorInfo and BadRequest travel inside Status.details as Any: list them for clients.
    for detail in ("google.rpc.ErrorInfo", "google.rpc.BadRequest"):
        if detail in index.messages:
            schemas.ref(detail)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "MedStation API", "version": "v1", "description": _INFO_DESCRIPTION},
        "servers": [{"url": "/", "description": "the gateway that serves this document"}],
        "security": [{SECURITY_SCHEME: []}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": {
                "Error": {
                    "description": "An error: the HTTP status follows the gRPC code.",
                    "content": {"application/json": {"schema": error}},
                }
            },
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The access_token of POST /v1/auth/login or /v1/auth/refresh.",
                }
            },
        },
    }


def _services(index: ProtoIndex) -> Iterator[tuple[str, str]]:
    for file in index.files:
        for position, service in enumerate(file.service):
            if any(_has_http_rule(method) for method in service.method):
                yield f"{file.package}.{service.name}", index.comment(file.name, (6, position))


def _has_http_rule(method: descriptor_pb2.MethodDescriptorProto) -> bool:
    return _http_rule(method) is not None


def _http_rule(method: descriptor_pb2.MethodDescriptorProto) -> http_pb2.HttpRule | None:
    rule: http_pb2.HttpRule | None = option(method.options, "google.api.http")
    return rule


def _bindings(index: ProtoIndex) -> Iterator[Binding]:
    for file in index.files:
        for service_position, service in enumerate(file.service):
            full_service = f"{file.package}.{service.name}"
            for position, method in enumerate(service.method):
                rule = _http_rule(method)
                if rule is None:
                    continue
                comment = index.comment(file.name, (6, service_position, 2, position))
                operation_id = f"{service.name}_{method.name}"
                yield Binding(method, full_service, rule, comment, operation_id)
                for extra, additional in enumerate(rule.additional_bindings, start=1):
                    yield Binding(
                        method, full_service, additional, comment, f"{operation_id}_{extra}"
                    )


def _verb_and_template(rule: http_pb2.HttpRule) -> tuple[str, str]:
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERBS:
        return str(pattern), str(getattr(rule, pattern))
    if pattern == "custom" and rule.custom.kind.lower() in _OPENAPI_VERBS:
        return rule.custom.kind.lower(), rule.custom.path
    raise ValueError(f"no OpenAPI operation for the HTTP rule {rule}".replace("\n", " "))


def openapi_path(template: str) -> tuple[str, list[str]]:
    """The OpenAPI path of an http rule template and its variables' field paths, in order.

    A variable is named by its last field (`{patient.id}` is `{id}`, as in GetPatient's
    `/v1/patients/{id}`: OpenAPI forbids two names for one path), or by its whole path with
    underscores should two variables of the template end alike. A `{name=pattern}` variable
    loses its pattern.
    """
    variables = _VARIABLE.findall(template)
    names = {variable: parameter_name(variable, variables) for variable in variables}
    path = _VARIABLE.sub(lambda match: "{" + names[match.group(1)] + "}", template)
    return path, variables


def parameter_name(field_path: str, variables: Sequence[str] = ()) -> str:
    """The path parameter of a variable (tools read a dot in its name as attribute access)."""
    leaf = field_path.rsplit(".", 1)[-1]
    if sum(variable.rsplit(".", 1)[-1] == leaf for variable in variables) > 1:
        return field_path.replace(".", "_")
    return leaf


def _check_unique_paths(paths: dict[str, dict[str, Any]]) -> None:
    """Two templates differing only in parameter names are one path to OpenAPI."""
    shapes: dict[str, str] = {}
    for path in paths:
        shape = _VARIABLE.sub("{}", path)
        if shape in shapes:
            raise ValueError(f"{path} and {shapes[shape]} are the same path with other names")
        shapes[shape] = path


def _operation(
    schemas: SchemaBuilder, binding: Binding, variables: list[str], verb: str
) -> dict[str, Any]:
    index = schemas.index
    request = index.message(binding.method.input_type)
    parameters = [_path_parameter(schemas, request, name, variables) for name in variables]
    body = binding.rule.body
    operation: dict[str, Any] = {
        "operationId": binding.operation_id,
        "tags": [binding.service.rsplit(".", 1)[-1]],
        "summary": _first_sentence(binding.comment) or binding.method.name,
        "description": binding.comment,
        "x-grpc-method": f"/{binding.service}/{binding.method.name}",
    }
    path_roots = {variable.split(".")[0] for variable in variables}
    consumed = set(path_roots) if body == "*" else {*path_roots, body} - {""}
    if body != "*":
        parameters += _query_parameters(schemas, request, consumed)
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = _request_body(schemas, request, body, variables)
    operation["responses"] = {
        "200": _success(schemas, binding.method),
        "default": {"$ref": "#/components/responses/Error"},
    }
    if binding.full_method in PUBLIC_METHODS:
        operation["security"] = []
    return operation


def _first_sentence(comment: str) -> str:
    flat = " ".join(comment.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[: end + 1]


def _path_parameter(
    schemas: SchemaBuilder, request: Message, variable: str, variables: list[str]
) -> Schema:
    field, comment = _resolve(schemas.index, request, variable)
    schema = schemas.field_schema(field)
    schema.pop("readOnly", None)  # an IDENTIFIER is output-only in bodies, given in the path
    return _parameter(parameter_name(variable, variables), "path", True, schema, comment)


def _resolve(index: ProtoIndex, message: Message, field_path: str) -> tuple[FieldProto, str]:
    """The field a dotted path names, starting from `message`, with its comment."""
    head, _, rest = field_path.partition(".")
    for field, comment in index.fields(message):
        if field.name == head:
            if not rest:
                return field, comment
            return _resolve(index, index.message(field.type_name), rest)
    raise ValueError(f"{message.name} has no field {head!r} (from a path variable)")


def _query_parameters(
    schemas: SchemaBuilder, message: Message, consumed: set[str], prefix: str = ""
) -> list[Schema]:
    """Fields neither in the path nor the body: query parameters, nested ones dotted."""
    parameters: list[Schema] = []
    for field, comment in schemas.index.fields(message):
        if field.name in consumed:
            continue
        name = prefix + field.name
        schema = schemas.field_schema(field)
        if schema.get("readOnly"):
            continue
        if "$ref" in schema:  # a message, not a well-known type: its fields one by one
            nested = schemas.index.message(field.type_name)
            parameters += _query_parameters(schemas, nested, set(), f"{name}.")
            continue
        if schema.get("type") == "object" or schema.get("type") is None:
            continue  # maps, Struct, Value and Any cannot travel in a query string
        parameters.append(_parameter(name, "query", is_required(field), schema, comment))
    return parameters


def _parameter(name: str, where: str, required: bool, schema: Schema, comment: str) -> Schema:
    parameter: Schema = {"name": name, "in": where, "required": required}
    if comment:
        parameter["description"] = comment
    parameter["schema"] = schema
    return parameter


def _request_body(
    schemas: SchemaBuilder, request: Message, body: str, variables: list[str]
) -> Schema:
    if body == "*":
        in_path = {variable for variable in variables if "." not in variable}
        schema = schemas.message_schema(request, exclude=in_path)
        required = "required" in schema
        if in_path:
            schema.pop("description", None)
        else:
            schema = schemas.ref(request.name)
    else:
        field, _ = _resolve(schemas.index, request, body)
        schema = schemas.field_schema(field)
        schema.pop("readOnly", None)
        required = is_required(field)
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _success(schemas: SchemaBuilder, method: descriptor_pb2.MethodDescriptorProto) -> Schema:
    output = method.output_type.lstrip(".")
    if output == "google.api.HttpBody":
        # The service chooses the content type of a raw body (JSON for the JWKS).
        return {"description": "The raw body the service returns.", "content": {"*/*": {}}}
    schema = schemas.ref(output)
    if method.server_streaming:
        # Labelled application/json by the transcoder, but newline-delimited JSON.
        return {
            "description": "A stream: one JSON object (this schema) per line, flushed as each "
            "is sent. An error before the first object is answered like any other error.",
            "content": {"application/json": {"schema": schema}},
            "x-stream": "newline-delimited-json",
        }
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _gateway_paths() -> dict[str, dict[str, Any]]:
    """What the gateway answers itself, without a token."""
    error = {"application/json": {"schema": {"$ref": SCHEMA_REF + ERROR_SCHEMA}}}
    return {
        "/healthz": {
            "get": {
                "operationId": "Gateway_Health",
                "tags": ["Gateway"],
                "summary": "200 when the gateway and every service behind it are serving.",
                "security": [],
                "responses": {
                    "200": {"description": "Every service is serving."},
                    "503": {"description": "A service is not serving.", "content": error},
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "Gateway_OpenApi",
                "tags": ["Gateway"],
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI description of the REST API.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def load_descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    try:
        descriptor_set.ParseFromString(path.read_bytes())
    except (OSError, DecodeError) as error:
        raise ValueError(f"cannot read descriptor set {path}: {error}") from error
    return descriptor_set


def render_openapi(descriptor_path: Path) -> str:
    """The document as committed: stable key order, two-space indents, a final newline."""
    document = build_openapi(load_descriptor_set(descriptor_path))
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def default_openapi_path() -> Path:
    """The committed document the local gateway serves."""
    return gateway_config.repo_root() / OPENAPI_RELATIVE_PATH


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.openapi",
        description="Generate the OpenAPI description of the REST API from the descriptor set.",
    )
    parser.add_argument(
        "--descriptor",
        type=Path,
        help=f"descriptor set to read (default: {gateway_config.DESCRIPTOR_RELATIVE_PATH})",
    )
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if --out differs"
    )
    args = parser.parse_args(argv)
    descriptor = args.descriptor or gateway_config.default_descriptor_path()
    try:
        text = render_openapi(descriptor)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(text)
        return 0
    current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
    if args.check:
        if current != text:
            print(f"stale: {args.out}; run `python -m devstack.openapi --out {args.out}`")
            return 1
        return 0
    if current != text:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
