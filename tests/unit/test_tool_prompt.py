"""Tools in prompts: Alpaca's own section, and the folding for templates that know nothing of tools."""

from __future__ import annotations

import json

from codebooga.prompts import tools_template
from codebooga.server.engine.chat.tool_prompt import fold_tools, template_tools
from codebooga.server.engine.chat.types import ToolFunction
from codebooga.server.engine.chat_template import choose_template, render_snippet

PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
TOOLS = (
    ToolFunction("get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ToolFunction("run_tests", None, {"type": "object", "properties": {}}),
)
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
HISTORY = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL, {**CALL, "id": "call_2", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_2", "name": "get_weather", "content": "rain"},
]


def section() -> str:
    return render_snippet(tools_template(), tools=template_tools(TOOLS)).strip()


def test_alpaca_carries_the_same_tools_section_as_tools_jinja() -> None:
    alpaca = choose_template("alpaca", None)
    assert alpaca.describes_tools
    prompt = alpaca.render(HISTORY[:1], bos_token="<s>", eos_token="</s>", tools=template_tools(TOOLS))
    assert prompt.startswith(f"{PREAMBLE}\n\n{section()}\n\n### Instruction:\n")
    assert json.dumps(template_tools(TOOLS)[0], ensure_ascii=False) in prompt


def test_alpaca_renders_calls_and_grouped_results() -> None:
    alpaca = choose_template("alpaca", None)
    prompt = alpaca.render(HISTORY, bos_token="<s>", eos_token="</s>", tools=template_tools(TOOLS))
    assert prompt.endswith(
        "### Response:\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'
        "\n\n### Input:\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response>"
        "\n\n### Response:\n"
    )


def test_alpaca_without_tools_is_unchanged() -> None:
    alpaca = choose_template("alpaca", None)
    prompt = alpaca.render([{"role": "user", "content": "Q"}], bos_token="<s>", eos_token="</s>")
    assert prompt == f"{PREAMBLE}\n\n### Instruction:\nQ\n\n### Response:\n"


def test_folding_puts_tools_calls_and_results_into_plain_turns() -> None:
    folded = fold_tools([{"role": "system", "content": "Be brief."}, *HISTORY], TOOLS)
    assert folded == [
        {"role": "system", "content": f"Be brief.\n\n{section()}"},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>',
        },
        {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response>"},
    ]


def test_folding_without_tools_adds_no_system_turn() -> None:
    assert fold_tools([{"role": "user", "content": "hi"}], ()) == [{"role": "user", "content": "hi"}]


def test_a_model_template_without_tool_support_is_recognised() -> None:
    chatml = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    assert not choose_template("auto", chatml).describes_tools
    assert choose_template("auto", "{% if tools %}{{ tools | tojson }}{% endif %}").describes_tools
