"""The OpenAPI document: says what the gateway does with each proto; committed fresh."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
import yaml
from google.protobuf import descriptor_pb2, text_format
from google.rpc import status_pb2
from schemathesis.core.result import Err
from schemathesis.specs.openapi.definitions import OPENAPI_31

from devstack import gateway_config, openapi
from devstack.gateway_config import profile_options, render_gateway_config

Document = dict[str, Any]
COMMITTED = gateway_config.repo_root() / gateway_config.OPENAPI_RELATIVE_PATH
PUBLIC = {
    "POST /v1/auth/register",
    "POST /v1/auth/login",
    "POST /v1/auth/refresh",
    "POST /v1/auth/logout",
    "GET /.well-known/jwks.json",
    "GET /healthz",
    "GET /openapi.json",
}


@pytest.fixture(scope="module")
def document(descriptor: Path) -> Document:
    return openapi.build_openapi(openapi.load_descriptor_set(descriptor))


def operations(document: Document) -> dict[str, Document]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def parameters(operation: Document) -> dict[str, Document]:
    return {parameter["name"]: parameter for parameter in operation.get("parameters", [])}


def component(document: Document, name: str) -> Document:
    found: Document = document["components"]["schemas"][name]
    return found


def body_schema(operation: Document) -> Document:
    schema: Document = operation["requestBody"]["content"]["application/json"]["schema"]
    return schema


# --- the committed document ---------------------------------------------------------------


def test_committed_document_is_what_the_descriptor_set_gives(descriptor: Path) -> None:
    assert COMMITTED.read_text(encoding="utf-8") == openapi.render_openapi(descriptor), (
        "gateway/generated/openapi.json is stale: run "
        "`.venv/bin/python -m devstack.openapi --out gateway/generated/openapi.json`"
    )


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n", encoding="utf-8")

    assert openapi.main(["--out", str(stale), "--check"]) == 1
    assert openapi.main(["--out", str(COMMITTED), "--check"]) == 0
    assert "stale" in capsys.readouterr().out
    assert stale.read_text(encoding="utf-8") == "{}\n"


def test_cli_writes_the_document(tmp_path: Path) -> None:
    out = tmp_path / "generated" / "openapi.json"

    assert openapi.main(["--out", str(out)]) == 0

    assert out.read_bytes() == COMMITTED.read_bytes()


def test_a_missing_descriptor_set_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert openapi.main(["--descriptor", str(tmp_path / "absent.binpb")]) == 2
    assert "absent.binpb" in capsys.readouterr().err


def test_document_is_valid_openapi_3_1(document: Document) -> None:
    jsonschema_rs.Draft202012Validator(OPENAPI_31).validate(document)
    loaded = schemathesis.openapi.from_dict(document)

    results = list(loaded.get_all_operations())

    assert [str(result.err()) for result in results if isinstance(result, Err)] == []
    assert len(results) == 43


# --- operations from google.api.http rules --------------------------------------------------


def test_every_http_rule_is_one_operation(document: Document, descriptor: Path) -> None:
    descriptor_set = openapi.load_descriptor_set(descriptor)
    annotated = {
        f"/{file.package}.{service.name}/{method.name}"
        for file in descriptor_set.file
        for service in file.service
        for method in service.method
        if method.options.ListFields()
    }

    documented = [op.get("x-grpc-method") for op in operations(document).values()]

    assert sorted(method for method in documented if method) == sorted(annotated)
    assert len(annotated) == 41


def test_operation_ids_are_unique(document: Document) -> None:
    ids = [operation["operationId"] for operation in operations(document).values()]

    assert len(ids) == len(set(ids))


def test_only_the_public_paths_need_no_token(document: Document) -> None:
    public = {label for label, op in operations(document).items() if op.get("security") == []}

    assert public == PUBLIC
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_the_public_methods_are_the_ones_the_gateway_lets_through(descriptor: Path) -> None:
    config = yaml.safe_load(render_gateway_config(profile_options("local", descriptor, env={})))
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    jwt = next(
        entry["typed_config"]
        for entry in manager["typed_config"]["http_filters"]
        if entry["typed_config"]["@type"].endswith("JwtAuthentication")
    )
    open_paths = {
        rule["match"]["path"]
        for rule in jwt["rules"]
        if "requires" not in rule and "path" in rule["match"]
    }

    grpc_public = {
        "/" + method.replace(".UserService.", ".UserService/") for method in openapi.PUBLIC_METHODS
    }
    assert grpc_public <= open_paths


def test_path_variables_are_required_path_parameters(document: Document) -> None:
    get_note = operations(document)["GET /v1/patients/{patient_id}/notes/{id}"]

    found = parameters(get_note)

    assert set(found) == {"patient_id", "id"}
    for parameter in found.values():
        assert parameter["in"] == "path"
        assert parameter["required"] is True
        assert parameter["schema"] == {"type": "string", "format": "uuid"}


def test_a_nested_path_variable_is_named_by_its_field(document: Document) -> None:
    patient = document["paths"]["/v1/patients/{id}"]

    assert set(patient) == {"get", "patch", "delete"}
    assert parameters(patient["patch"])["id"]["schema"] == {"type": "string", "format": "uuid"}
    assert not [path for path in document["paths"] if re.search(r"\{[^}]*\.", path)]


def test_get_fields_outside_the_path_are_query_parameters(document: Document) -> None:
    found = parameters(operations(document)["GET /v1/patients"])

    assert {name: p["in"] for name, p in found.items()} == {
        "page_size": "query",
        "page_token": "query",
        "query": "query",
        "order_by": "query",
    }
    assert found["page_size"]["schema"]["minimum"] == 0
    assert found["page_size"]["schema"]["maximum"] == 2**31 - 1
    assert found["query"]["schema"]["maxLength"] == 200
    # IGNORE_IF_ZERO_VALUE: empty means "not given", so it is accepted besides the list.
    assert found["order_by"]["schema"]["enum"][-1] == ""
    assert "name desc" in found["order_by"]["schema"]["enum"]


def test_a_required_query_field_is_a_required_parameter(document: Document) -> None:
    query = parameters(operations(document)["GET /v1/messages:search"])["query"]

    assert query["required"] is True
    assert query["schema"]["minLength"] == 1


def test_body_star_takes_every_field_outside_the_path(document: Document) -> None:
    create_note = operations(document)["POST /v1/patients/{patient_id}/notes"]

    body = body_schema(create_note)

    assert set(body["properties"]) == {"content", "note_time", "request_id"}
    assert body["required"] == ["content"]
    assert create_note["requestBody"]["required"] is True
    content = body["properties"]["content"]
    assert (content["minLength"], content["maxLength"]) == (1, 100_000)
    assert body["properties"]["note_time"]["format"] == "date-time"
    assert body["properties"]["request_id"]["anyOf"] == [{"format": "uuid"}, {"const": ""}]


def test_a_body_without_path_fields_is_the_request_message(document: Document) -> None:
    register = operations(document)["POST /v1/auth/register"]

    assert body_schema(register) == {
        "$ref": "#/components/schemas/medstation.user.v1.RegisterRequest"
    }
    schema = component(document, "medstation.user.v1.RegisterRequest")
    assert schema["required"] == ["email", "password", "display_name"]
    assert schema["properties"]["email"]["format"] == "email"
    assert schema["properties"]["email"]["maxLength"] == 254
    assert schema["properties"]["password"]["minLength"] == 12


def test_body_field_is_that_field_and_the_rest_goes_to_the_query(document: Document) -> None:
    update = operations(document)["PATCH /v1/patients/{id}"]

    assert body_schema(update) == {"$ref": "#/components/schemas/medstation.patient.v1.Patient"}
    assert set(parameters(update)) == {"id", "update_mask"}
    mask = re.compile(parameters(update)["update_mask"]["schema"]["pattern"])
    assert mask.match("name,date_of_birth")
    assert mask.match("dateOfBirth")
    assert not mask.match("care_team")
    assert not mask.match("name,")


def test_field_behaviors_become_read_and_write_only(document: Document) -> None:
    user = component(document, "medstation.user.v1.User")["properties"]
    patient = component(document, "medstation.patient.v1.Patient")["properties"]

    assert user["id"]["readOnly"] is True
    assert user["role"]["readOnly"] is True
    assert user["password"]["writeOnly"] is True
    assert "readOnly" not in user["display_name"]
    assert patient["id"]["readOnly"] is True  # IDENTIFIER: taken from the path
    assert patient["care_team"] == {
        "type": "array",
        "items": {"type": "string"},
        "readOnly": True,
        "description": patient["care_team"]["description"],
    }


def test_enums_are_the_strings_of_the_in_rules(document: Document) -> None:
    job = component(document, "medstation.summary.v1.SummaryJob")["properties"]
    patient = component(document, "medstation.patient.v1.Patient")["properties"]

    assert job["state"]["enum"] == ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]
    assert patient["sex"]["enum"] == ["female", "male", "other", "unknown"]
    assert job["summary"]["$ref"] == "#/components/schemas/medstation.summary.v1.Summary"
    assert job["summary"]["readOnly"] is True


def test_numeric_rules_become_bounds(document: Document) -> None:
    model = component(document, "medstation.chat.v1.Model")["properties"]

    assert model["price_per_million_tokens"]["type"] == "number"
    assert model["price_per_million_tokens"]["minimum"] == 0


def test_errors_are_google_rpc_status(document: Document) -> None:
    get_me = operations(document)["GET /v1/users/me"]
    error = document["components"]["responses"]["Error"]["content"]["application/json"]

    assert get_me["responses"]["default"] == {"$ref": "#/components/responses/Error"}
    assert error["schema"] == {"$ref": "#/components/schemas/google.rpc.Status"}
    status = component(document, "google.rpc.Status")["properties"]
    assert set(status) == {"code", "message", "details"}
    assert status["details"]["items"]["required"] == ["@type"]
    assert {"google.rpc.ErrorInfo", "google.rpc.BadRequest"} <= set(
        document["components"]["schemas"]
    )


def test_streams_and_raw_bodies_say_what_they_are(document: Document) -> None:
    watch = operations(document)["GET /v1/summary-jobs/{id}:watch"]["responses"]["200"]
    jwks = operations(document)["GET /.well-known/jwks.json"]["responses"]["200"]
    delete = operations(document)["DELETE /v1/patients/{id}"]["responses"]["200"]

    assert watch["x-stream"] == "newline-delimited-json"
    assert watch["content"]["application/json"]["schema"]["$ref"].endswith("SummaryJob")
    assert jwks["content"] == {"*/*": {}}
    assert delete["content"]["application/json"]["schema"] == {"type": "object"}


def test_descriptions_come_from_the_proto_comments(document: Document) -> None:
    get_patient = operations(document)["GET /v1/patients/{id}"]

    assert get_patient["summary"] == "GetPatient returns one patient."
    assert "NOT_FOUND" in get_patient["description"]
    assert parameters(get_patient)["id"]["description"] == "The patient's UUID."
    assert {tag["name"] for tag in document["tags"]} == {
        "UserService",
        "PatientRecordService",
        "SummaryService",
        "ChatService",
    }


def test_the_document_fits_the_gateways_direct_response_limit() -> None:
    assert COMMITTED.stat().st_size < 1_048_576
    assert json.loads(COMMITTED.read_text(encoding="utf-8"))["openapi"] == "3.1.0"


# --- the mapping on protos of its own ---------------------------------------------------------

SYNTHETIC = """
name: "shop/v1/shop.proto"
package: "shop.v1"
message_type {
  name: "Item"
  field {
    name: "name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL
    options { [google.api.field_behavior]: IDENTIFIER }
  }
  field { name: "count" number: 2 type: TYPE_INT64 label: LABEL_OPTIONAL }
  field { name: "blob" number: 3 type: TYPE_BYTES label: LABEL_OPTIONAL }
  field { name: "kind" number: 4 type: TYPE_ENUM type_name: ".shop.v1.Kind" label: LABEL_OPTIONAL }
  field {
    name: "labels" number: 5 type: TYPE_MESSAGE type_name: ".shop.v1.Item.LabelsEntry"
    label: LABEL_REPEATED
  }
  field {
    name: "tags" number: 6 type: TYPE_STRING label: LABEL_REPEATED
    options {
      [buf.validate.field] {
        repeated { min_items: 1 max_items: 3 unique: true items { string { max_len: 10 } } }
      }
    }
  }
  field {
    name: "parent" number: 7 type: TYPE_MESSAGE type_name: ".shop.v1.Item" label: LABEL_OPTIONAL
  }
  nested_type {
    name: "LabelsEntry"
    field { name: "key" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
    field { name: "value" number: 2 type: TYPE_INT32 label: LABEL_OPTIONAL }
    options { map_entry: true }
  }
}
message_type {
  name: "Filter"
  field {
    name: "since" number: 1 type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp"
    label: LABEL_OPTIONAL
  }
  field {
    name: "size" number: 2 type: TYPE_UINT32 label: LABEL_OPTIONAL
    options { [buf.validate.field] { uint32 { gt: 0 lt: 10 } } }
  }
}
message_type {
  name: "ListItemsRequest"
  field { name: "shelf" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
  field {
    name: "filter" number: 2 type: TYPE_MESSAGE type_name: ".shop.v1.Filter" label: LABEL_OPTIONAL
  }
}
enum_type {
  name: "Kind"
  value { name: "KIND_UNSPECIFIED" number: 0 }
  value { name: "KIND_BIG" number: 1 }
}
service {
  name: "Shop"
  method {
    name: "ListItems" input_type: ".shop.v1.ListItemsRequest" output_type: ".shop.v1.Item"
    options {
      [google.api.http] {
        get: "/v1/{shelf=shelves/*}/items"
        additional_bindings { get: "/v1/items" }
      }
    }
  }
  method { name: "Internal" input_type: ".shop.v1.Item" output_type: ".shop.v1.Item" }
}
"""


def synthetic(**replacements: str) -> descriptor_pb2.FileDescriptorSet:
    text = SYNTHETIC
    for old, new in replacements.items():
        text = text.replace(old, new)
    file = text_format.Parse(text, descriptor_pb2.FileDescriptorProto())
    status = descriptor_pb2.FileDescriptorProto()
    status_pb2.DESCRIPTOR.CopyToProto(status)  # the error schema every document has
    return descriptor_pb2.FileDescriptorSet(file=[status, file])


def test_scalar_enum_map_and_repeated_fields_follow_the_proto3_json_mapping() -> None:
    item = component(openapi.build_openapi(synthetic()), "shop.v1.Item")["properties"]

    assert item["count"] == {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
    assert item["blob"]["format"] == "byte"
    assert item["kind"] == {"type": "string", "enum": ["KIND_UNSPECIFIED", "KIND_BIG"]}
    assert item["labels"]["type"] == "object"
    assert item["labels"]["additionalProperties"]["format"] == "int32"
    assert item["tags"] == {
        "type": "array",
        "items": {"type": "string", "maxLength": 10},
        "minItems": 1,
        "maxItems": 3,
        "uniqueItems": True,
    }
    assert item["parent"] == {"$ref": "#/components/schemas/shop.v1.Item"}  # recursive


def test_additional_bindings_patterns_and_nested_query_fields() -> None:
    document = openapi.build_openapi(synthetic())

    found = operations(document)
    on_shelf = found["GET /v1/{shelf}/items"]
    everywhere = found["GET /v1/items"]

    assert on_shelf["operationId"] == "Shop_ListItems"
    assert everywhere["operationId"] == "Shop_ListItems_1"
    assert set(parameters(on_shelf)) == {"shelf", "filter.since", "filter.size"}
    assert set(parameters(everywhere)) == {"shelf", "filter.since", "filter.size"}
    size = parameters(on_shelf)["filter.size"]["schema"]
    assert (size["exclusiveMinimum"], size["exclusiveMaximum"]) == (0, 10)
    assert parameters(on_shelf)["filter.since"]["schema"]["format"] == "date-time"
    assert "x-grpc-method" in on_shelf
    assert not any("Internal" in op["operationId"] for op in found.values())


def test_two_names_for_one_path_are_refused() -> None:
    clash = synthetic(**{'{ get: "/v1/items" }': '{ get: "/v1/{filter.since}/items" }'})

    with pytest.raises(ValueError, match="same path"):
        openapi.build_openapi(clash)


def test_a_method_no_openapi_verb_names_is_refused() -> None:
    link = 'custom { kind: "LINK" path: "/v1/items:link" }'
    custom = synthetic(**{'get: "/v1/{shelf=shelves/*}/items"': link})

    with pytest.raises(ValueError, match="LINK"):
        openapi.build_openapi(custom)


@pytest.mark.parametrize(
    ("template", "path", "variables"),
    [
        ("/v1/patients/{id}", "/v1/patients/{id}", ["id"]),
        ("/v1/patients/{patient.id}", "/v1/patients/{id}", ["patient.id"]),
        ("/v1/{name=shelves/*}", "/v1/{name}", ["name"]),
        ("/v1/{a.id}/{b.id}", "/v1/{a_id}/{b_id}", ["a.id", "b.id"]),
    ],
)
def test_openapi_paths_of_http_templates(template: str, path: str, variables: list[str]) -> None:
    assert openapi.openapi_path(template) == (path, variables)
