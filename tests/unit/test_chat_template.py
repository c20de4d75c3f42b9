"""The Alpaca template renders the seed's format exactly; templates render in Jinja's sandbox."""

import pytest

from codebooga.server.engine.chat_template import choose_template, from_source
from codebooga.server.engine.errors import InvalidRequest

PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)


def render(messages: list[dict[str, str]]) -> str:
    return choose_template("alpaca", None).render(messages, bos_token="<s>", eos_token="</s>")


def test_single_turn_uses_the_default_preamble() -> None:
    text = render([{"role": "user", "content": "Q1"}])
    assert text == f"{PREAMBLE}\n\n### Instruction:\nQ1\n\n### Response:\n"


def test_multi_turn_matches_the_seed_format_exactly() -> None:
    text = render(
        [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ]
    )
    assert text == f"{PREAMBLE}\n\n### Instruction:\nQ1\n\n### Response:\nA1\n\n### Instruction:\nQ2\n\n### Response:\n"


def test_system_message_replaces_the_preamble() -> None:
    text = render([{"role": "system", "content": "You write Python."}, {"role": "user", "content": "Q"}])
    assert text == "You write Python.\n\n### Instruction:\nQ\n\n### Response:\n"


def test_alpaca_declares_its_turn_marker_as_a_stop_string() -> None:
    assert choose_template("alpaca", None).stop == ("### Instruction:",)


def test_auto_prefers_the_models_template_and_falls_back_to_alpaca() -> None:
    assert choose_template("auto", "{{ messages[0]['content'] }}").name == "model"
    assert choose_template("auto", None).name == "alpaca"


def test_sandbox_blocks_access_to_python_internals() -> None:
    template = from_source("evil", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(InvalidRequest):
        template.render([{"role": "user", "content": "x"}], bos_token="", eos_token="")


def test_raise_exception_in_a_template_becomes_a_request_error() -> None:
    template = from_source("strict", "{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        template.render([{"role": "user", "content": "x"}], bos_token="", eos_token="")
