"""JSON Schemas of proto messages as the gateway's JSON carries them, for the OpenAPI document.

The gateway's transcoder prints proto field names (snake_case) and accepts them (and
lowerCamelCase) on input, so properties are named by proto field name. Each schema says what
the protos say: `google.api.field_behavior` (OUTPUT_ONLY and IDENTIFIER become readOnly,
INPUT_ONLY writeOnly, REQUIRED `required`) and the protovalidate rules that JSON Schema can
express (lengths, patterns, `in` lists as enums, uuid/email formats, numeric bounds); CEL
rules are left to the description.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message as ProtoMessage

from buf.validate import validate_pb2

Schema = dict[str, Any]
FieldProto = descriptor_pb2.FieldDescriptorProto

SCHEMA_REF = "#/components/schemas/"
_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
# proto3 JSON: 64-bit integers travel as strings (a JSON number loses precision past 2^53).
_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}
_SCALARS: dict[int, Schema] = {
    FieldProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldProto.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldProto.TYPE_INT32: _INT32,
    FieldProto.TYPE_SINT32: _INT32,
    FieldProto.TYPE_SFIXED32: _INT32,
    FieldProto.TYPE_UINT32: _UINT32,
    FieldProto.TYPE_FIXED32: _UINT32,
    FieldProto.TYPE_INT64: _INT64,
    FieldProto.TYPE_SINT64: _INT64,
    FieldProto.TYPE_SFIXED64: _INT64,
    FieldProto.TYPE_UINT64: _UINT64,
    FieldProto.TYPE_FIXED64: _UINT64,
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_WRAPPERS = {
    "DoubleValue": FieldProto.TYPE_DOUBLE,
    "FloatValue": FieldProto.TYPE_FLOAT,
    "Int64Value": FieldProto.TYPE_INT64,
    "UInt64Value": FieldProto.TYPE_UINT64,
    "Int32Value": FieldProto.TYPE_INT32,
    "UInt32Value": FieldProto.TYPE_UINT32,
    "BoolValue": FieldProto.TYPE_BOOL,
    "StringValue": FieldProto.TYPE_STRING,
    "BytesValue": FieldProto.TYPE_BYTES,
}
# Well-known types have a JSON form of their own instead of an object of their fields.
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
    **{f"google.protobuf.{name}": _SCALARS[kind] for name, kind in _WRAPPERS.items()},
}
_ZERO: dict[str, object] = {"string": "", "integer": 0, "number": 0, "boolean": False}
_FORMATS = {"uuid": "uuid", "email": "email", "hostname": "hostname", "uri": "uri"}
_FORMATS |= {"ipv4": "ipv4", "ipv6": "ipv6"}


@dataclass(frozen=True)
class Message:
    """A message type with where it is declared, for its source comments."""

    name: str  # full name without the leading dot
    proto: descriptor_pb2.DescriptorProto
    file: str
    path: tuple[int, ...]  # source_code_info path of the message


class ProtoIndex:
    """Messages, enums and source comments of a descriptor set, by full name."""

    def __init__(self, descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = list(descriptor_set.file)
        self.messages: dict[str, Message] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self._comments: dict[tuple[str, tuple[int, ...]], str] = {}
        for file in self.files:
            prefix = f"{file.package}." if file.package else ""
            self._index_messages(file.name, prefix, file.message_type, (4,))
            for enum in file.enum_type:
                self.enums[prefix + enum.name] = enum
            for location in file.source_code_info.location:
                if location.leading_comments:
                    key = (file.name, tuple(location.path))
                    self._comments[key] = _clean_comment(location.leading_comments)

    def _index_messages(
        self,
        file: str,
        prefix: str,
        messages: Iterable[descriptor_pb2.DescriptorProto],
        path: tuple[int, ...],
    ) -> None:
        for index, message in enumerate(messages):
            name = prefix + message.name
            self.messages[name] = Message(name, message, file, (*path, index))
            self._index_messages(file, f"{name}.", message.nested_type, (*path, index, 3))
            for enum in message.enum_type:
                self.enums[f"{name}.{enum.name}"] = enum

    def comment(self, file: str, path: tuple[int, ...]) -> str:
        return self._comments.get((file, path), "")

    def message(self, type_name: str) -> Message:
        return self.messages[type_name.lstrip(".")]

    def fields(self, message: Message) -> Iterator[tuple[FieldProto, str]]:
        """Each field of `message` with its comment."""
        for index, field in enumerate(message.proto.field):
            yield field, self.comment(message.file, (*message.path, 2, index))


def _clean_comment(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines())


def option(options: ProtoMessage, name: str) -> Any:
    """An extension's value on an options message, by full name; None when unset.

    (The googleapis stubs type extensions as plain field descriptors, which mypy does not
    accept as Extensions keys.)
    """
    for descriptor, value in options.ListFields():
        if descriptor.full_name == name:
            return value
    return None


def behaviors(field: FieldProto) -> set[int]:
    return set(option(field.options, "google.api.field_behavior") or ())


def is_required(field: FieldProto) -> bool:
    rules = field.options.Extensions[validate_pb2.field]
    return field_behavior_pb2.REQUIRED in behaviors(field) or rules.required


class SchemaBuilder:
    """Builds schemas, collecting each message it references as a component."""

    def __init__(self, index: ProtoIndex) -> None:
        self.index = index
        self.components: dict[str, Schema] = {}

    def ref(self, type_name: str) -> Schema:
        """A $ref to the message's component (added on first use), or a well-known type."""
        name = type_name.lstrip(".")
        if name in WELL_KNOWN:
            return dict(WELL_KNOWN[name])
        if name not in self.components:
            self.components[name] = {}  # placeholder: a message may contain itself
            self.components[name] = self.message_schema(self.index.message(name))
        return {"$ref": SCHEMA_REF + name}

    def message_schema(self, message: Message, exclude: Iterable[str] = ()) -> Schema:
        """An object schema of `message`'s fields, leaving out the `exclude`d ones."""
        excluded = set(exclude)
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for field, comment in self.index.fields(message):
            if field.name in excluded:
                continue
            properties[field.name] = self.field_schema(field, comment)
            if is_required(field):
                required.append(field.name)
        schema: Schema = {"type": "object"}
        if description := self.index.comment(message.file, message.path):
            schema["description"] = description
        schema["properties"] = properties
        if required:
            schema["required"] = required
        # No additionalProperties: false. The transcoder ignores a field it does not know,
        # and responses may gain fields (API.md): clients must tolerate unknown ones.
        return schema

    def field_schema(self, field: FieldProto, description: str = "") -> Schema:
        """The schema of one field's JSON value, with its rules and behaviours."""
        schema = self._value_schema(field)
        marks = behaviors(field)
        if marks & {field_behavior_pb2.OUTPUT_ONLY, field_behavior_pb2.IDENTIFIER}:
            schema["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in marks:
            schema["writeOnly"] = True
        if description:
            schema["description"] = description
        return schema

    def _value_schema(self, field: FieldProto) -> Schema:
        rules = field.options.Extensions[validate_pb2.field]
        map_entry = self._map_entry(field)
        if map_entry is not None:
            value_field = map_entry.proto.field[1]
            return {"type": "object", "additionalProperties": self._single(value_field, None)}
        if field.label != FieldProto.LABEL_REPEATED:
            return self._single(field, rules)
        item_rules = rules.repeated.items if rules.HasField("repeated") else None
        schema: Schema = {"type": "array", "items": self._single(field, item_rules)}
        if rules.HasField("repeated"):
            schema |= _repeated_keywords(rules.repeated)
        if rules.required and "minItems" not in schema:
            schema["minItems"] = 1
        return schema

    def _map_entry(self, field: FieldProto) -> Message | None:
        if field.type != FieldProto.TYPE_MESSAGE or field.label != FieldProto.LABEL_REPEATED:
            return None
        if field.type_name.lstrip(".") in WELL_KNOWN:
            return None
        message = self.index.message(field.type_name)
        return message if message.proto.options.map_entry else None

    def _single(self, field: FieldProto, rules: validate_pb2.FieldRules | None) -> Schema:
        """The schema of one value (an array's item for a repeated field)."""
        if field.type == FieldProto.TYPE_MESSAGE:
            schema = self.ref(field.type_name)
        elif field.type == FieldProto.TYPE_ENUM:
            schema = self._enum_schema(field.type_name)
        elif field.type in _SCALARS:
            schema = dict(_SCALARS[field.type])
        else:
            raise ValueError(f"field {field.name}: proto groups have no JSON mapping")
        if rules is None:
            return schema
        constraints = rule_keywords(rules, self._enum_names(field))
        if rules.required and schema.get("type") == "string" and not _excludes_empty(constraints):
            constraints["minLength"] = 1
        return _constrain(schema, constraints, rules.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE)

    def _enum_schema(self, type_name: str) -> Schema:
        enum = self.index.enums[type_name.lstrip(".")]
        return {"type": "string", "enum": [value.name for value in enum.value]}

    def _enum_names(self, field: FieldProto) -> dict[int, str]:
        if field.type != FieldProto.TYPE_ENUM:
            return {}
        enum = self.index.enums[field.type_name.lstrip(".")]
        return {value.number: value.name for value in enum.value}


def _excludes_empty(constraints: Schema) -> bool:
    return bool({"enum", "const", "format", "minLength"} & constraints.keys())


def _constrain(schema: Schema, constraints: Schema, zero_allowed: bool) -> Schema:
    """`schema` with the constraints; with IGNORE_IF_ZERO_VALUE the zero value passes too."""
    if not constraints:
        return schema
    zero = _ZERO.get(str(schema.get("type")))
    if not zero_allowed or zero is None:
        return schema | constraints
    if "enum" in constraints:
        values = list(constraints["enum"])
        return schema | constraints | {"enum": values if zero in values else [*values, zero]}
    # The zero value means "not set" and skips the rules: either shape is accepted.
    return schema | {"anyOf": [constraints, {"const": zero}]}


def rule_keywords(rules: validate_pb2.FieldRules, enum_names: dict[int, str]) -> Schema:
    """The JSON Schema keywords for a field's protovalidate type rules."""
    kind = rules.WhichOneof("type")
    if kind == "string":
        return _string_keywords(rules.string)
    if kind in ("int32", "uint32", "double", "float", "sint32", "fixed32", "sfixed32"):
        return _number_keywords(getattr(rules, kind))
    if kind == "enum":
        return _enum_keywords(rules.enum, enum_names)
    if kind == "field_mask":
        return _field_mask_keywords(rules.field_mask)
    if kind == "bool" and rules.bool.HasField("const"):
        return {"const": rules.bool.const}
    return {}


def _string_keywords(rules: validate_pb2.StringRules) -> Schema:
    keywords: Schema = {}
    if rules.HasField("const"):
        keywords["const"] = rules.const
    if rules.HasField("len"):
        keywords["minLength"] = keywords["maxLength"] = rules.len
    if rules.HasField("min_len"):
        keywords["minLength"] = rules.min_len
    if rules.HasField("max_len"):
        keywords["maxLength"] = rules.max_len
    if rules.HasField("pattern"):
        keywords["pattern"] = rules.pattern
    if allowed := _in(rules):
        keywords["enum"] = allowed
    if rules.not_in:
        keywords["not"] = {"enum": list(rules.not_in)}
    well_known = rules.WhichOneof("well_known")
    if well_known in _FORMATS and getattr(rules, well_known):
        keywords["format"] = _FORMATS[well_known]
    return keywords


def _in(rules: Any) -> list[Any]:
    """A rules message's `in` list (a Python keyword, so not an attribute by name)."""
    return list(getattr(rules, "in"))


def _number_keywords(rules: Any) -> Schema:
    """Bounds of any numeric rules message (they share field names)."""
    keywords: Schema = {}
    if rules.HasField("const"):
        keywords["const"] = rules.const
    bounds = {
        "gte": "minimum",
        "gt": "exclusiveMinimum",
        "lte": "maximum",
        "lt": "exclusiveMaximum",
    }
    for rule, keyword in bounds.items():
        if rules.HasField(rule):
            keywords[keyword] = getattr(rules, rule)
    if allowed := _in(rules):
        keywords["enum"] = allowed
    if list(rules.not_in):
        keywords["not"] = {"enum": list(rules.not_in)}
    return keywords


def _enum_keywords(rules: validate_pb2.EnumRules, names: dict[int, str]) -> Schema:
    keywords: Schema = {}
    if rules.HasField("const"):
        keywords["const"] = names.get(rules.const, rules.const)
    if allowed := _in(rules):
        keywords["enum"] = [names.get(number, number) for number in allowed]
    if rules.not_in:
        keywords["not"] = {"enum": [names.get(number, number) for number in rules.not_in]}
    return keywords


def _field_mask_keywords(rules: validate_pb2.FieldMaskRules) -> Schema:
    """A mask's JSON form is its paths joined by commas; `in` limits which paths."""
    if not (allowed := _in(rules)):
        return {}
    spellings = sorted({spelling for path in allowed for spelling in _path_spellings(path)})
    one = "(" + "|".join(spellings) + ")"
    return {"pattern": f"^{one}(,{one})*$"}


def _path_spellings(path: str) -> tuple[str, ...]:
    """A mask path as written (snake_case) and as lowerCamelCase, which the parser accepts."""
    head, *rest = path.split("_")
    camel = head + "".join(part.capitalize() for part in rest)
    return (path,) if camel == path else (path, camel)


def _repeated_keywords(rules: validate_pb2.RepeatedRules) -> Schema:
    keywords: Schema = {}
    if rules.HasField("min_items"):
        keywords["minItems"] = rules.min_items
    if rules.HasField("max_items"):
        keywords["maxItems"] = rules.max_items
    if rules.unique:
        keywords["uniqueItems"] = True
    return keywords
