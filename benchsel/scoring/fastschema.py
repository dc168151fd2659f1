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


_TYPE_TESTS = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
    "number": "(isinstance({v}, (int, float)) and not isinstance({v}, bool))",
    "integer": "_is_integer({v})",
}


class _Unsupported(Exception):
    pass


def compile_schema(schema: Any) -> Check | None:
    """A checker equivalent to ``Draft202012Validator(schema).is_valid``, or None when the schema
    uses a keyword outside the subset. The schema becomes one generated function (no call per
    keyword), which is what makes it fast."""
    writer = _Writer()
    try:
        writer.schema(schema, "value", 1)
    except _Unsupported:
        return None
    source = "def check(value):\n" + "\n".join(writer.lines) + "\n    return True\n"
    namespace: dict[str, Any] = {"_is_integer": _is_integer, **writer.constants}
    exec(compile(source, "<benchsel answer schema>", "exec"), namespace)  # noqa: S102 - our own code
    check: Check = namespace["check"]
    return check


class _Writer:
    """Emits Python lines that ``return False`` as soon as the value breaks the schema."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._names = 0

    def _name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def _emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def _fail_unless(self, depth: int, condition: str) -> None:
        self._emit(depth, f"if not ({condition}): return False")

    def _length_within(self, v: str, low: Any, high: Any, depth: int) -> None:
        """minItems/maxItems, minLength/maxLength: ``low`` 0 or absent and ``high`` None check nothing."""
        if low:
            self._fail_unless(depth, f"len({v}) >= {int(low)}")
        if high is not None:
            self._fail_unless(depth, f"len({v}) <= {int(high)}")

    def schema(self, schema: Any, v: str, depth: int) -> None:
        if schema is True:
            return
        if schema is False:
            self._emit(depth, "return False")
            return
        if not isinstance(schema, Mapping) or not set(schema) <= _KEYWORDS:
            raise _Unsupported
        self._type(schema, v, depth)
        self._enum(schema, v, depth)
        self._object(schema, v, depth)
        self._array(schema, v, depth)
        self._string(schema, v, depth)

    def _type(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        if "type" not in schema:
            return
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not names or any(not isinstance(n, str) or n not in _TYPE_TESTS for n in names):
            raise _Unsupported
        self._fail_unless(depth, " or ".join(_TYPE_TESTS[n].format(v=v) for n in names))

    def _enum(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        if "enum" not in schema:
            return
        options = schema["enum"]
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise _Unsupported  # jsonschema's enum equality for numbers and booleans differs from ==
        name = self._name("ENUM")
        self.constants[name] = frozenset(options)
        self._fail_unless(depth, f"isinstance({v}, str) and {v} in {name}")

    def _object(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        additional = schema.get("additionalProperties", True)
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise _Unsupported
        if not isinstance(properties, Mapping):
            raise _Unsupported
        if not required and not properties and additional is True:
            return
        self._emit(depth, f"if isinstance({v}, dict):")
        for name in required:
            self._emit(depth + 1, f"if {name!r} not in {v}: return False")
        key, item = self._name("k"), self._name("v")
        self._emit(depth + 1, f"for {key}, {item} in {v}.items():")
        keyword = "if"
        for prop, sub in properties.items():
            self._emit(depth + 2, f"{keyword} {key} == {prop!r}:")
            self._emit(depth + 3, "pass")
            self.schema(sub, item, depth + 3)
            keyword = "elif"
        if properties:
            self._emit(depth + 2, "else:")
            self._emit(depth + 3, "pass")
            self.schema(additional, item, depth + 3)
        else:
            self._emit(depth + 2, "pass")
            self.schema(additional, item, depth + 2)

    def _array(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        min_items, max_items = schema.get("minItems", 0), schema.get("maxItems")
        if "items" not in schema and not min_items and max_items is None:
            return
        self._emit(depth, f"if isinstance({v}, list):")
        self._emit(depth + 1, "pass")
        self._length_within(v, min_items, max_items, depth + 1)
        if "items" in schema:
            item = self._name("i")
            self._emit(depth + 1, f"for {item} in {v}:")
            self._emit(depth + 2, "pass")
            self.schema(schema["items"], item, depth + 2)

    def _string(self, schema: Mapping[str, Any], v: str, depth: int) -> None:
        min_length, max_length = schema.get("minLength", 0), schema.get("maxLength")
        pattern = schema.get("pattern")
        if not min_length and max_length is None and pattern is None:
            return
        self._emit(depth, f"if isinstance({v}, str):")
        self._emit(depth + 1, "pass")
        self._length_within(v, min_length, max_length, depth + 1)
        if pattern is not None:
            name = self._name("PATTERN")
            self.constants[name] = re.compile(pattern)
            self._fail_unless(depth + 1, f"{name}.search({v}) is not None")
