"""Grammars for chat answers: tool calls in codebooga's call syntax, and JSON answers for `response_format`.

A call is written `<tool_call>{"name": "<function>", "arguments": {...}}</tool_call>` (the Hermes layout that
Qwen 2.5, Hermes and SmolLM3 are trained on); the grammar makes `name` one of the offered functions and
`arguments` valid against that function's `parameters` schema.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from codebooga.server.engine.chat.types import NamedToolChoice, ResponseFormat, ToolChoice, ToolFunction
from codebooga.server.engine.errors import InvalidRequest
from codebooga.server.engine.structured.json_schema import GrammarBuilder
from codebooga.server.engine.types import Grammar

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"


def response_format_grammar(response_format: ResponseFormat) -> Grammar:
    builder = GrammarBuilder()
    schema = response_format.schema if response_format.kind == "json_schema" else {"type": "object"}
    builder.add_schema(builder.resolve(schema or {"type": "object"}, "answer", "response_format"), "", "response_format")
    return Grammar(builder.gbnf(), param="response_format")


def tool_call_grammar(tools: Sequence[ToolFunction], choice: ToolChoice, parallel: bool) -> Grammar | None:
    """The grammar for `tool_choice`: `none` → no grammar; `auto` → free text until the model opens a call,
    then well-formed calls to the end; `required` → one or more calls; a named function → one call of it.
    Calls follow each other on separate lines; without `parallel` there is exactly one."""
    if choice == "none" or not tools:
        return None
    offered = [tool for tool in tools if not isinstance(choice, NamedToolChoice) or tool.name == choice.name]
    builder = GrammarBuilder()
    alternatives = []
    for index, tool in enumerate(offered):
        param = f"tools[{tools.index(tool)}].function.parameters"
        arguments = builder.resolve(tool.parameters, f"tool{index}", param)
        call_schema: dict[str, Any] = {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": arguments or {"type": "object"}},
            "required": ["name", "arguments"],
        }
        alternatives.append(builder.add_schema(call_schema, f"call-{index}", param))
    builder.add_rule("tool-call", " | ".join(alternatives))
    one_call = f"{_literal(CALL_OPEN)} tool-call {_literal(CALL_CLOSE)}"
    more = f' ("\\n" {one_call})*' if parallel and not isinstance(choice, NamedToolChoice) else ""
    builder.add_rule("root", one_call + more)
    trigger = CALL_OPEN if choice == "auto" else None
    return Grammar(builder.gbnf(), param="tools", trigger=trigger)


def _literal(text: str) -> str:
    return json.dumps(text)


def chat_grammar(
    tools: Sequence[ToolFunction], choice: ToolChoice, parallel: bool, response_format: ResponseFormat | None
) -> Grammar | None:
    """The one grammar a chat answer follows, or None for free text."""
    calls = tool_call_grammar(tools, choice, parallel)
    if calls is not None and response_format is not None:
        raise InvalidRequest(
            "response_format together with tools is not supported yet: an answer is either calls or formatted JSON; "
            "send tool_choice 'none' or drop response_format",
            param="response_format",
        )
    if calls is not None:
        return calls
    return response_format_grammar(response_format) if response_format is not None else None
