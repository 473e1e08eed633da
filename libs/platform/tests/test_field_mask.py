import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Value

from medstation_platform import errors
from medstation_platform.field_mask import fields_to_update


def test_mask_paths_are_used_and_camel_case_is_accepted() -> None:
    fields = fields_to_update(
        Value(), FieldMask(paths=["displayName"]), updatable=("display_name", "password")
    )
    assert fields == {"display_name"}


def test_mask_naming_a_protected_field_is_rejected_on_update_mask() -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        fields_to_update(Value(), FieldMask(paths=["role"]), updatable=("display_name",))
    assert raised.value.violations[0].field == "update_mask"


def test_without_mask_the_present_updatable_fields_are_used() -> None:
    present = Value(string_value="x")  # sets the `string_value` field
    assert fields_to_update(present, FieldMask(), updatable=("string_value",)) == {"string_value"}
    assert fields_to_update(present, FieldMask(), updatable=("number_value",)) == frozenset()
