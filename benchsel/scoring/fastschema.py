"""A fast yes/no check for the small JSON Schema subset answer schemas use (type, required,
properties, additionalProperties, items, string enums, lengths, pattern).

It decides validity exactly as jsonschema's Draft 2020-12 validator does for that subset, about
twenty times faster. A schema with any other keyword compiles to None and the caller uses jsonschema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples", "default"}
_KEYWORDS = _ANNOTATIONS | {
    "type",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
}


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": _is_integer,
}


class _Unsupported(Exception):
    pass


def compile_schema(schema: Any) -> Check | None:
    """A checker equivalent to ``Draft202012Validator(schema).is_valid``, or None when the schema
    uses a keyword outside the subset."""
    try:
        return _compile(schema)
    except _Unsupported:
        return None


def _compile(schema: Any) -> Check:
    if schema is True:
        return lambda _: True
    if schema is False:
        return lambda _: False
    if not isinstance(schema, Mapping) or not set(schema) <= _KEYWORDS:
        raise _Unsupported
    checks = [*_type_checks(schema), *_object_checks(schema), *_array_checks(schema), *_string_checks(schema)]
    if not checks:
        return lambda _: True
    if len(checks) == 1:
        return checks[0]

    def check_all(value: Any) -> bool:
        return all(check(value) for check in checks)

    return check_all


def _type_checks(schema: Mapping[str, Any]) -> list[Check]:
    if "type" not in schema:
        return []
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not names or any(not isinstance(n, str) or n not in _TYPES for n in names):
        raise _Unsupported
    tests = [_TYPES[n] for n in names]
    if len(tests) == 1:
        return [tests[0]]
    return [lambda value: any(test(value) for test in tests)]


def _object_checks(schema: Mapping[str, Any]) -> list[Check]:
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    additional = schema.get("additionalProperties", True)
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _Unsupported
    if not isinstance(properties, Mapping):
        raise _Unsupported
    if not required and not properties and additional is True:
        return []
    compiled = {name: _compile(sub) for name, sub in properties.items()}
    other = _compile(additional)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name in required:
            if name not in value:
                return False
        for key, item in value.items():
            sub = compiled.get(key)
            if not (sub(item) if sub is not None else other(item)):
                return False
        return True

    return [check]


def _array_checks(schema: Mapping[str, Any]) -> list[Check]:
    min_items, max_items = schema.get("minItems", 0), schema.get("maxItems")
    if "items" not in schema and not min_items and max_items is None:
        return []
    items = _compile(schema.get("items", True))

    def check(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            return False
        return all(items(item) for item in value)

    return [check]


def _string_checks(schema: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if "enum" in schema:
        options = schema["enum"]
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise _Unsupported  # jsonschema's enum equality for numbers and booleans differs from ==
        allowed = frozenset(options)
        checks.append(lambda value: isinstance(value, str) and value in allowed)
    min_length, max_length = schema.get("minLength", 0), schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    if min_length or max_length is not None or pattern is not None:

        def check(value: Any) -> bool:
            if not isinstance(value, str):
                return True
            if len(value) < min_length or (max_length is not None and len(value) > max_length):
                return False
            return pattern is None or pattern.search(value) is not None

        checks.append(check)
    return checks
