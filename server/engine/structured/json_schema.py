"""JSON schema → GBNF, through the converter llama-cpp-python ships, after checking the schema uses only what
that converter enforces.

The converter (`llama_cpp.llama_grammar.SchemaConverter`, a port of llama.cpp's json-schema-to-grammar.py)
silently ignores keywords it does not know (`minimum`, `uniqueItems`, `not`, ...): a schema using them would
yield JSON the schema rejects. So `check_schema` refuses every keyword outside the list below, naming it, and
the combinations the converter drops a part of (a `pattern` next to `minLength`, constraints next to a `$ref`
or a list of types). Two of its rules are replaced: its string characters and its regex `.` let raw control
characters through, which JSON forbids inside strings.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from llama_cpp.llama_grammar import SchemaConverter

from codebooga.server.engine.errors import InvalidRequest

ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
     "writeOnly", "$defs", "definitions", "discriminator", "strict"}
)
"""Keywords that describe without constraining: ignoring them never lets an invalid answer through."""

STRUCTURAL = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
     "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "pattern", "minLength", "maxLength", "format"}
)
"""Keywords the converter enforces."""

FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})
TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})
MAX_REPETITION = 256
"""Largest minItems/maxItems/minLength/maxLength: the converter spells out each repetition as nested rules."""
MAX_DEPTH = 64

_STRING_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
_PATTERN_DOT = r'[^"\\\x7F\x00-\x1F]'


def check_schema(schema: Any, param: str) -> None:
    """Raise `InvalidRequest` naming the first part of `schema` that constrained generation could not honour."""
    _check(schema, schema, param, "", 0)


def _check(node: Any, root: Any, param: str, path: str, depth: int) -> None:
    where = f"{param} at {path or '/'}"
    if isinstance(node, bool):
        if node is False:
            raise InvalidRequest(f"{where}: the schema `false` matches nothing, so no answer could satisfy it", param)
        return
    if not isinstance(node, Mapping):
        raise InvalidRequest(f"{where}: a schema must be a JSON object, got {type(node).__name__}", param)
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"{where}: the schema nests deeper than {MAX_DEPTH} levels", param)
    unknown = sorted(key for key in node if key not in STRUCTURAL and key not in ANNOTATIONS)
    if unknown:
        raise InvalidRequest(
            f"{where}: the JSON schema keyword '{unknown[0]}' is not supported for constrained generation "
            f"(supported: {', '.join(sorted(STRUCTURAL))}); remove it or express it with those",
            param,
        )
    _check_combinations(node, where, param)
    _check_types(node, where, param)
    for key in ("minItems", "maxItems", "minLength", "maxLength"):
        value = node.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_REPETITION):
            raise InvalidRequest(f"{where}: {key} must be an integer from 0 to {MAX_REPETITION}, got {value!r}", param)
    if "format" in node and node["format"] not in FORMATS:
        raise InvalidRequest(
            f"{where}: the string format '{node['format']}' is not supported (supported: {', '.join(sorted(FORMATS))})",
            param,
        )
    if "$ref" in node:
        _check_ref(node["$ref"], root, where, param)
    properties = node.get("properties", {})
    if not isinstance(properties, Mapping):
        raise InvalidRequest(f"{where}: properties must be an object", param)
    required = node.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise InvalidRequest(f"{where}: required must be a list of property names", param)
    missing = [name for name in required if name not in properties]
    if missing:
        raise InvalidRequest(f"{where}: required names '{missing[0]}', which is not under properties", param)
    for name, child in properties.items():
        _check(child, root, param, f"{path}/properties/{name}", depth + 1)
    additional = node.get("additionalProperties")
    if isinstance(additional, Mapping):
        _check(additional, root, param, f"{path}/additionalProperties", depth + 1)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            if not isinstance(node[key], list) or not node[key]:
                raise InvalidRequest(f"{where}: {key} must be a non-empty list of schemas", param)
            for index, child in enumerate(node[key]):
                _check(child, root, param, f"{path}/{key}/{index}", depth + 1)
    items = node.get("items")
    if isinstance(items, list):
        for index, child in enumerate(items):
            _check(child, root, param, f"{path}/items/{index}", depth + 1)
    elif items is not None:
        _check(items, root, param, f"{path}/items", depth + 1)
    for key in ("$defs", "definitions"):
        for name, child in (node.get(key) or {}).items():
            _check(child, root, param, f"{path}/{key}/{name}", depth + 1)


def _check_combinations(node: Mapping[str, Any], where: str, param: str) -> None:
    constraints = [key for key in node if key in STRUCTURAL]

    def refuse(first: str, second: str) -> None:
        raise InvalidRequest(
            f"{where}: '{first}' together with '{second}' in one schema is not supported for constrained "
            f"generation (the converter would ignore one of them); drop one",
            param,
        )

    for leader in ("$ref", "anyOf", "oneOf", "const", "enum"):
        if leader in node:
            others = [key for key in constraints if key != leader and not (leader in ("const", "enum") and key == "type")]
            if others:
                refuse(leader, others[0])
    if "allOf" in node:
        others = [key for key in constraints if key not in ("allOf", "type")]
        if others:
            refuse("allOf", others[0])
        for part in node["allOf"]:
            if isinstance(part, Mapping) and not set(part) & {"properties", "$ref", "anyOf"}:
                raise InvalidRequest(f"{where}: allOf parts must be object schemas with properties (or $refs to them)", param)
    if isinstance(node.get("type"), list):
        others = [key for key in constraints if key != "type"]
        if others:
            refuse("a list of types", others[0])
    for leader in ("pattern", "format"):
        extra = [key for key in ("pattern", "format", "minLength", "maxLength") if key in node and key != leader]
        if leader in node and extra:
            refuse(leader, extra[0])
    if "prefixItems" in node and ({"items", "minItems", "maxItems"} & set(node)):
        refuse("prefixItems", sorted({"items", "minItems", "maxItems"} & set(node))[0])
    if isinstance(node.get("items"), list) and ({"minItems", "maxItems"} & set(node)):
        refuse("a list of items", sorted({"minItems", "maxItems"} & set(node))[0])


def _check_types(node: Mapping[str, Any], where: str, param: str) -> None:
    declared = node.get("type")
    kinds = declared if isinstance(declared, list) else [declared] if declared is not None else []
    for kind in kinds:
        if kind not in TYPES:
            raise InvalidRequest(f"{where}: unknown type {kind!r} (JSON schema types: {', '.join(sorted(TYPES))})", param)
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        raise InvalidRequest(f"{where}: enum must be a non-empty list", param)


def _check_ref(ref: Any, root: Any, where: str, param: str) -> None:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise InvalidRequest(f"{where}: only local $refs ('#/$defs/...') are supported, got {ref!r}", param)
    target = root
    for part in ref.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or part not in target:
            raise InvalidRequest(f"{where}: $ref {ref} points at nothing in the schema", param)
        target = target[part]


class GrammarBuilder:
    """Collects JSON schemas and hand-written rules into one GBNF grammar.

    One converter serves every schema, so the primitive rules (strings, numbers) are shared and rule names never
    collide; each schema's `$ref`s are resolved against that schema alone (tool A's `#/$defs/Item` is not tool
    B's).
    """

    def __init__(self) -> None:
        self._converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        self._rules: dict[str, str] = {}

    def resolve(self, schema: Mapping[str, Any] | bool, scope: str, param: str) -> dict[str, Any]:
        """Check `schema` and resolve its `$ref`s within itself; the result can be embedded in other schemas
        given to `add_schema`."""
        check_schema(schema, param)
        if isinstance(schema, bool):
            return {}
        try:
            return self._converter.resolve_refs(copy.deepcopy(dict(schema)), scope)
        except (AssertionError, ValueError, KeyError, TypeError) as error:
            raise InvalidRequest(f"{param}: the schema's $refs cannot be resolved: {error}", param) from error

    def add_schema(self, resolved: Mapping[str, Any], name: str, param: str) -> str:
        """Add rules for a schema from `resolve` (or one embedding such schemas); returns its rule's name."""
        try:
            return self._converter.visit(dict(resolved) or {"type": "object"}, name)
        except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as error:
            raise InvalidRequest(f"{param}: the schema cannot be turned into a grammar: {error}", param) from error

    def add_rule(self, name: str, body: str) -> str:
        self._rules[name] = body
        return name

    def gbnf(self) -> str:
        rules = {**self._converter._rules, **self._rules}  # the converter offers no public accessor to its rules
        if "char" in rules:
            rules["char"] = _STRING_CHAR
        if "dot" in rules:
            rules["dot"] = _PATTERN_DOT
        return "\n".join(f"{name} ::= {rule}" for name, rule in sorted(rules.items()))


def schema_gbnf(schema: Mapping[str, Any] | bool, param: str) -> str:
    """A GBNF grammar (rule `root`) whose sentences are JSON texts valid against `schema`, in the converter's
    layout: compact, at most one space between tokens, properties in schema order."""
    builder = GrammarBuilder()
    builder.add_schema(builder.resolve(schema, "input", param), "", param)
    return builder.gbnf()
