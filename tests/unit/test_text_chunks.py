"""Streamed text chunks filled into a template are byte for byte what the chunk's Pydantic model serializes."""

from __future__ import annotations

import pytest

from codebooga.server.api.schemas import ChatChunkChoice, ChatCompletionChunk, ChatDelta, Completion, CompletionChoice
from codebooga.server.api.streaming import TextChunks, chunk_json

TEXTS = [
    "", "def f(x):", ' "quoted" ', "back\\slash", "line\nbreak\r\ttab", "".join(map(chr, range(32))), "\x7f",
    "é漢字🙂", "\u2028\u2029", "</script>", "{\"json\": [1, 2]}", "codebooga-chunk-text",
]  # fmt: skip


def chat_render(model: str, index: int, include_usage: bool):
    def render(text: str) -> str:
        chunk = ChatCompletionChunk(
            id="chatcmpl-1", created=7, model=model, choices=[ChatChunkChoice(index=index, delta=ChatDelta(content=text))]
        )
        return chunk_json(chunk, include_usage)

    return render


def completion_render(text: str) -> str:
    return chunk_json(Completion(id="cmpl-1", created=7, model="m", choices=[CompletionChoice(index=3, text=text)]), False)


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_chunks_match_the_model(include_usage: bool) -> None:
    render = chat_render("codebooga", 1, include_usage)
    chunks = TextChunks(render)
    for text in TEXTS:
        assert chunks(text) == render(text)


def test_completion_chunks_match_the_model() -> None:
    chunks = TextChunks(completion_render)
    for text in TEXTS:
        assert chunks(text) == completion_render(text)


def test_a_model_named_like_the_marker_still_gets_right_chunks() -> None:
    render = chat_render(TextChunks._MARKER, 0, False)
    chunks = TextChunks(render)
    for text in TEXTS:
        assert chunks(text) == render(text)
