"""JSON types checked against a protobuf message type before `json_format.ParseDict`.

ParseDict reports a value of the wrong JSON type with the Python error it ran
into: a list where a message goes is "unhashable type: 'list'", a list where
bytes go is "can only concatenate list (not "bytes") to list". Those words would
reach the client. This check walks the request along the message descriptor
first and names the field instead ("request.meta must be an object"); what is
left to ParseDict (unknown fields, ranges, enum names) it words well itself.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from unitserve.errors import BadRequest

# Well-known types with a JSON form of their own: the JSON type each one takes
# (None: any value).
_WELL_KNOWN: dict[str, type | None] = {
    "google.protobuf.Value": None,
    "google.protobuf.ListValue": list,
    "google.protobuf.Struct": dict,
    "google.protobuf.Any": dict,
}
_TEXT = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


def check_json_types(value: Any, descriptor: Any, where: str, prefix: str = "") -> None:
    """BadRequest("<prefix><where>.<field> must be ...") at the first value of the wrong
    JSON type for message `descriptor`. Unknown keys and nulls are left to ParseDict.

    `descriptor` is typed loosely: a message class's ``DESCRIPTOR`` is protobuf's Python
    descriptor or its C (upb) twin, which its type stubs keep apart."""
    if not isinstance(value, dict):
        raise BadRequest(f"{prefix}{where} must be an object")
    for key, item in value.items():
        if not key.isascii():
            # Field names are ASCII; a lone surrogate in a key would make protobuf's own
            # lookup fail with a SystemError.
            raise BadRequest(f"{prefix}{where} has no field named {key!r}")
        field = descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)
        if field is None or item is None:
            continue
        path = f"{where}.{key}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _expect(item, dict, "an object", path, prefix)
            entry = field.message_type.fields_by_name["value"]
            for k, v in item.items():
                _check_text(k, f"{path} key {k!r}", prefix)
                if v is None and entry.message_type is None:
                    raise BadRequest(f"{prefix}{path}.{k} must not be null")
                _check_field(v, entry, f"{path}.{k}", prefix)
        elif _repeated(field):
            _expect(item, list, "an array", path, prefix)
            for i, v in enumerate(item):
                _check_field(v, field, f"{path}[{i}]", prefix)
        else:
            _check_field(item, field, path, prefix)


def _repeated(field: FieldDescriptor) -> bool:
    # `label` is gone from protobuf 7's descriptors; `is_repeated` is new in 6.
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED


def _check_field(value: Any, field: FieldDescriptor, path: str, prefix: str) -> None:
    if value is None:
        return
    message_type = field.message_type
    if field.type == FieldDescriptor.TYPE_MESSAGE and message_type is not None:
        name = message_type.full_name
        if name not in _WELL_KNOWN:
            check_json_types(value, message_type, path, prefix)
        elif _WELL_KNOWN[name] is list:
            _expect(value, list, "an array", path, prefix)
        elif _WELL_KNOWN[name] is dict:
            _expect(value, dict, "an object", path, prefix)
    elif field.type in _TEXT:
        _expect(value, str, "a string", path, prefix)
        _check_text(value, path, prefix)
    elif field.type == FieldDescriptor.TYPE_BOOL:
        _expect(value, bool, "true or false", path, prefix)
    elif isinstance(value, bool) or not isinstance(value, int | float | str):
        # numbers and enums: protobuf's JSON also takes them as strings
        raise BadRequest(f"{prefix}{path} must be a number or a string")


def _check_text(text: str, path: str, prefix: str) -> None:
    """Protobuf strings are UTF-8: JSON's "\\ud800" (a lone surrogate) has no UTF-8 form."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{prefix}{path} is not valid Unicode (a lone surrogate)") from None


def _expect(value: Any, kind: type, said: str, path: str, prefix: str) -> None:
    if not isinstance(value, kind):
        raise BadRequest(f"{prefix}{path} must be {said}")
