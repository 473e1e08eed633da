"""Which fields a PATCH changes (AIP-134)."""

from __future__ import annotations

import re
from collections.abc import Collection

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from medstation_platform import errors

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def fields_to_update(
    resource: Message,
    mask: FieldMask,
    *,
    updatable: Collection[str],
    credentials: Collection[str] = (),
) -> frozenset[str]:
    """The mask's paths; without a mask, the updatable fields present in the body.

    Naming a field that is not updatable in the mask is a 400 on `update_mask`; without
    a mask, server-owned fields in the body are ignored (AIP-203). `credentials` are
    input-only fields that authorize a change rather than being changed themselves.
    """
    if mask.paths:
        paths = [_snake_case(path) for path in mask.paths]
        for path in paths:
            if path not in updatable:
                raise errors.InvalidArgument.for_field(
                    "update_mask", f"field {path!r} cannot be updated"
                )
        return frozenset(paths)
    present = {field.name for field, _ in resource.ListFields()}
    return frozenset(present & set(updatable) - set(credentials))


def _snake_case(path: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", path).lower()
