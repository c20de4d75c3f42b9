"""JSON schemas → grammars: what constrained generation can enforce is accepted, the rest refused by name."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from codebooga.server.engine.chat.types import NamedToolChoice, ResponseFormat, ToolFunction
from codebooga.server.engine.errors import InvalidRequest
from codebooga.server.engine.structured.answer_grammar import chat_grammar, tool_call_grammar
from codebooga.server.engine.structured.json_schema import schema_gbnf


class Item(BaseModel):
    name: str
    tags: list[str]


class Order(BaseModel):
    items: list[Item]
    note: str | None = None
    priority: int = 0


@pytest.mark.parametrize(
    "schema",
    [
        Order.model_json_schema(),
        {"type": "object"},
        {},
        {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3},
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": "^[a-z]+-[0-9]{2}$"},
        {"enum": ["a", 1, None]},
        {"type": ["string", "null"]},
        {"type": "object", "properties": {"a": {"const": 3}}, "required": ["a"], "additionalProperties": False},
    ],
)
def test_supported_schemas_become_grammars(schema: dict) -> None:
    grammar = schema_gbnf(schema, "response_format")
    assert "root ::=" in grammar
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in grammar or "char ::=" not in grammar  # no raw control characters


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "integer", "minimum": 0}, "'minimum'"),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "'uniqueItems'"),
        ({"not": {"type": "string"}}, "'not'"),
        ({"type": "object", "patternProperties": {"^a": {}}}, "'patternProperties'"),
        ({"type": "string", "pattern": "a+", "maxLength": 3}, "'pattern' together with 'maxLength'"),
        ({"$ref": "#/$defs/A", "type": "object", "$defs": {"A": {}}}, "'$ref' together with 'type'"),
        ({"$ref": "https://example.com/s.json"}, "only local $refs"),
        ({"$ref": "#/$defs/Missing"}, "points at nothing"),
        ({"type": "object", "properties": {}, "required": ["x"]}, "required names 'x'"),
        ({"type": "string", "format": "email"}, "format 'email'"),
        ({"type": "array", "items": {}, "maxItems": 100000}, "maxItems must be an integer from 0 to 256"),
        ({"type": "banana"}, "unknown type 'banana'"),
        ({"type": "object", "properties": {"a": {"type": "number", "multipleOf": 2}}}, "at /properties/a"),
    ],
)
def test_unenforceable_schemas_are_refused_by_name(schema: dict, named: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        schema_gbnf(schema, "response_format")
    assert named in refused.value.message and refused.value.param == "response_format"


def test_deep_nesting_is_refused_not_a_crash() -> None:
    schema: dict = {"type": "object"}
    for _ in range(200):
        schema = {"type": "array", "items": schema}
    with pytest.raises(InvalidRequest, match="nests deeper"):
        schema_gbnf(schema, "response_format")


TOOLS = (
    ToolFunction("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ToolFunction("lookup", None, {"type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}, "$defs": {"Item": Item.model_json_schema()}}),
)


def test_tool_choice_shapes_the_grammar() -> None:
    assert tool_call_grammar(TOOLS, "none", True) is None
    auto = tool_call_grammar(TOOLS, "auto", True)
    required = tool_call_grammar(TOOLS, "required", True)
    single = tool_call_grammar(TOOLS, "required", False)
    named = tool_call_grammar(TOOLS, NamedToolChoice("lookup"), True)
    assert auto is not None and auto.trigger == "<tool_call>"
    assert required is not None and required.trigger is None and ')*' in required.gbnf
    assert single is not None and ')*' not in single.gbnf.split("root ::=")[1].splitlines()[0]
    assert named is not None and '"\\"get_weather\\""' not in named.gbnf and '"\\"lookup\\""' in named.gbnf


def test_a_bad_tool_schema_names_the_tool() -> None:
    tools = (*TOOLS, ToolFunction("broken", None, {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}}))
    with pytest.raises(InvalidRequest) as refused:
        tool_call_grammar(tools, "auto", True)
    assert refused.value.param == "tools[2].function.parameters" and "'maximum'" in refused.value.message


def test_tools_and_a_response_format_together_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="response_format together with tools"):
        chat_grammar(TOOLS, "auto", True, ResponseFormat("json_object"))
    assert chat_grammar(TOOLS, "none", True, ResponseFormat("json_object")) is not None
