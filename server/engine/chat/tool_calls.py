"""Reading tool calls out of a choice's text as it streams.

The grammar guarantees the layout `<tool_call>{"name": "...", "arguments": {...}}</tool_call>` (one per line),
so the reader is a small state machine: content until a call opens (holding back anything that may be the start
of `<tool_call>`), the call's name once it is complete (OpenAI streams id and name first), then the arguments'
JSON text as it comes, found to end where its braces balance.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator

from codebooga.server.engine.chat.types import ChatEvent, ToolCallDelta
from codebooga.server.engine.structured.answer_grammar import CALL_CLOSE, CALL_OPEN
from codebooga.server.engine.types import TextDelta

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


class ToolCallReader:
    """Splits one choice's text into content (`TextDelta`) and calls (`ToolCallDelta`)."""

    def __init__(self, choice: int, content_first: bool) -> None:
        """`content_first`: the answer may begin with text (`tool_choice` auto); else it is calls only."""
        self.choice = choice
        self.completed_calls = 0
        self._state = "content" if content_first else "between"
        self._buffer = ""
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, text: str) -> Iterator[ChatEvent]:
        self._buffer += text
        while True:
            before = (self._state, len(self._buffer))
            yield from getattr(self, f"_{self._state}")()
            if (self._state, len(self._buffer)) == before:
                return

    def finish(self) -> Iterator[ChatEvent]:
        """The choice ended: release content held back as a possible call opening."""
        if self._state == "content" and self._buffer:
            yield TextDelta(self.choice, self._buffer)
        self._buffer = ""

    def _content(self) -> Iterator[ChatEvent]:
        start = self._buffer.find(CALL_OPEN)
        if start >= 0:
            if start:
                yield TextDelta(self.choice, self._buffer[:start])
            self._buffer = self._buffer[start + len(CALL_OPEN) :]
            self._state = "head"
            return
        keep = _partial_suffix(self._buffer, CALL_OPEN)
        ready = self._buffer[: len(self._buffer) - keep]
        if ready:
            yield TextDelta(self.choice, ready)
            self._buffer = self._buffer[len(ready) :]

    def _between(self) -> Iterator[ChatEvent]:
        stripped = self._buffer.lstrip()
        if stripped.startswith(CALL_OPEN):
            self._buffer = stripped[len(CALL_OPEN) :]
            self._state = "head"
        elif stripped and not CALL_OPEN.startswith(stripped):
            self._state = "content"  # not a call after all (only possible without the grammar): keep it as text
        return iter(())

    def _head(self) -> Iterator[ChatEvent]:
        match = _HEAD.match(self._buffer)
        if match:
            name = json.loads(f'"{match.group(1)}"')
            index = self.completed_calls
            self._buffer = self._buffer[match.end() :]
            self._state = "arguments"
            self._depth, self._in_string, self._escaped = 0, False, False
            yield ToolCallDelta(self.choice, index, id=new_call_id(), name=name)

    def _arguments(self) -> Iterator[ChatEvent]:
        if self._depth == 0:  # the space the grammar allows before the arguments' opening brace is not theirs
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return
        end = self._scan_arguments()
        fragment = self._buffer[:end] if end is not None else self._buffer
        if fragment:
            yield ToolCallDelta(self.choice, self.completed_calls, arguments=fragment)
        self._buffer = self._buffer[len(fragment) :]
        if end is not None:
            self._state = "tail"

    def _scan_arguments(self) -> int | None:
        """Advance the brace count over the buffer; the index just past the arguments' closing brace, if seen."""
        for position, char in enumerate(self._buffer):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    return position + 1
        return None

    def _tail(self) -> Iterator[ChatEvent]:
        end = self._buffer.find(CALL_CLOSE)
        if end >= 0:
            self._buffer = self._buffer[end + len(CALL_CLOSE) :]
            self.completed_calls += 1
            self._state = "between"
        return iter(())


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper start of `marker`."""
    for length in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-length:]):
            return length
    return 0
