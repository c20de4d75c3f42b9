"""Chat templates: messages → prompt text, rendered in Jinja's sandbox.

A template may declare stop strings in a leading comment, `{#- stop: ["### Instruction:"] -#}`, so the
format's turn marker always ends a reply even when the model forgets its end-of-sequence token. The comment
travels with the template (including into GGUF metadata, where `codebooga convert` embeds Alpaca).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from codebooga.prompts import alpaca_template
from codebooga.server.engine.errors import InvalidRequest

_STOP_DECLARATION = re.compile(r"\{#-?\s*stop:\s*(\[.*?\])\s*-?#\}", re.DOTALL)


class TemplateError(Exception):
    """The chosen template cannot be loaded or compiled."""


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    source: str
    stop: tuple[str, ...]

    @property
    def describes_tools(self) -> bool:
        """Whether the template renders a `tools` list itself (Hugging Face templates with tool support do)."""
        return re.search(r"\btools\b", self.source) is not None

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        bos_token: str,
        eos_token: str,
        tools: Sequence[Mapping[str, Any]] = (),
    ) -> str:
        """`tools` in the Hugging Face convention ({"type": "function", "function": {...}}), None when empty."""
        try:
            return _compile(self.source).render(
                messages=list(messages),
                tools=list(tools) or None,
                add_generation_prompt=True,
                bos_token=bos_token,
                eos_token=eos_token,
            )
        except jinja2.TemplateError as error:
            raise InvalidRequest(f"the chat template rejected these messages: {error}", param="messages") from error


def render_snippet(source: str, **variables: Any) -> str:
    """Render a small template (a prompt section) in the same sandbox and with the same filters."""
    return _compile(source).render(**variables)


def from_source(name: str, source: str) -> ChatTemplate:
    _compile(source)
    return ChatTemplate(name=name, source=source, stop=declared_stops(source))


def declared_stops(source: str) -> tuple[str, ...]:
    match = _STOP_DECLARATION.search(source)
    if not match:
        return ()
    try:
        stops = json.loads(match.group(1))
    except json.JSONDecodeError as error:
        raise TemplateError(f"the template's stop declaration is not a JSON list of strings: {error}") from error
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise TemplateError("the template's stop declaration must be a JSON list of strings")
    return tuple(stops)


def choose_template(choice: str, model_template: str | None) -> ChatTemplate:
    """`auto`: the model's own template if it has one, else Alpaca; `alpaca`; `model`; or a Jinja file path."""
    if choice == "alpaca" or (choice == "auto" and not model_template):
        return from_source("alpaca", alpaca_template())
    if choice in ("auto", "model"):
        if not model_template:
            raise TemplateError("--chat-template model: the model file has no tokenizer.chat_template")
        return from_source("model", model_template)
    path = Path(choice)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TemplateError(
            f"--chat-template {choice}: not auto, alpaca or model, and not a readable file ({error.strerror})"
        ) from error
    return from_source(str(path), source)


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _strftime_now(format_string: str) -> str:
    return datetime.now().strftime(format_string)


def _tojson(value: object, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


_environment = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
)
_environment.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
_environment.filters["tojson"] = _tojson


@functools.lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    try:
        return _environment.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"chat template syntax error on line {error.lineno}: {error.message}") from error
