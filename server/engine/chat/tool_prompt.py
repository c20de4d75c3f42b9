"""Tools in the prompt: handed to templates that describe tools themselves, folded into plain turns for the rest.

A template without tool support (many GGUFs' own, e.g. SmolLM2's ChatML) never sees `tools`, assistant
`tool_calls` or `tool` turns, so the model would not know the functions or the results. For those, the tools
section (prompts/tools.jinja) joins the system message, earlier calls are written into the assistant's text in
the call syntax the grammar enforces, and tool results become a user turn of <tool_response> blocks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from codebooga.prompts import tools_template
from codebooga.server.engine.chat.types import ToolFunction
from codebooga.server.engine.chat_template import render_snippet
from codebooga.server.engine.structured.answer_grammar import CALL_CLOSE, CALL_OPEN


def template_tools(tools: Sequence[ToolFunction]) -> list[dict[str, Any]]:
    """Tools as chat templates take them (the Hugging Face convention, which is OpenAI's request shape)."""
    described = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = dict(tool.parameters)
        described.append({"type": "function", "function": function})
    return described


def call_text(name: str, arguments: Mapping[str, Any]) -> str:
    """One call written as the model is asked to write it."""
    return CALL_OPEN + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + CALL_CLOSE


def fold_tools(messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolFunction]) -> list[dict[str, Any]]:
    """The conversation as plain system/user/assistant turns carrying the tools, calls and results as text."""
    folded: list[dict[str, Any]] = []
    if tools:
        section = render_snippet(tools_template(), tools=template_tools(tools)).strip()
        if messages and messages[0]["role"] == "system":
            folded.append({"role": "system", "content": f"{messages[0]['content']}\n\n{section}"})
            messages = messages[1:]
        else:
            folded.append({"role": "system", "content": section})
    for message in messages:
        role = message["role"]
        if role == "assistant" and message.get("tool_calls"):
            calls = [call_text(call["function"]["name"], call["function"]["arguments"]) for call in message["tool_calls"]]
            text = "\n".join(([message["content"]] if message.get("content") else []) + calls)
            folded.append({"role": "assistant", "content": text})
        elif role == "tool":
            response = f"<tool_response>\n{message['content']}\n</tool_response>"
            if folded and folded[-1].get("from_tools"):
                folded[-1]["content"] += "\n" + response
            else:
                folded.append({"role": "user", "content": response, "from_tools": True})
        else:
            folded.append({"role": role, "content": message["content"]})
    return [{key: value for key, value in message.items() if key != "from_tools"} for message in folded]
