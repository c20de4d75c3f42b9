"""llama.cpp must split text exactly as SentencePiece does, or the model sees inputs it was never trained on."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest
import sentencepiece

SAMPLES = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(f\"{i:>3}\")",
    "Total: 1234567890 items, 3.14159 ratio, 0x1F id",
    "Café naïve résumé — Größe über alles; 数据 模型 合并; Ελληνικά",
    "emoji 🚀🔥 and rare 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 fall back to bytes",
    "  leading spaces,   runs   of spaces and trailing   ",
    "tabs\tand\t\tnewlines\n\n\nmixed \t \n end",
    "SELECT id, price FROM items WHERE price > 42;  // const f = (a, b) => a * b;",
    "",
]


@pytest.fixture(scope="module")
def vocab_only(f32_gguf: Path) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(f32_gguf), vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def processor(tokenizer_model: Path) -> sentencepiece.SentencePieceProcessor:
    return sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model))


@pytest.mark.parametrize("text", SAMPLES, ids=range(len(SAMPLES)))
def test_llama_cpp_tokenizes_like_sentencepiece(
    vocab_only: llama_cpp.Llama, processor: sentencepiece.SentencePieceProcessor, text: str
) -> None:
    assert vocab_only.tokenize(text.encode(), add_bos=False, special=False) == processor.encode(text)


def test_bos_is_added_by_default_and_detokenization_round_trips(
    vocab_only: llama_cpp.Llama, processor: sentencepiece.SentencePieceProcessor
) -> None:
    text = SAMPLES[3]
    tokens = vocab_only.tokenize(text.encode())
    assert tokens == [processor.bos_id(), *processor.encode(text)]
    assert vocab_only.detokenize(tokens[1:]).decode().lstrip(" ") == text
