"""tokenizer.json written from a SentencePiece model tokenizes exactly like SentencePiece, and the EXL2 backend's
vocabulary (read from that file) renders tokens to the same bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codebooga.merge.exl2.tokenizer_json import TokenizerError, needs_tokenizer_json, write_tokenizer_json
from codebooga.server.engine.exllamav2.vocab import HfVocabulary

sentencepiece = pytest.importorskip("sentencepiece")

TEXTS = [
    "def add(x, y):\n    return x + y\n",
    "for i in range(10):\n\tprint(i, 'tab\\t')\n",
    "Café naïve résumé — Größe über alles",
    "数据 模型 合并 Ελληνικά",
    "emoji 🦙 and a rare glyph ꙮ (byte fallback)",
    "digits 1234567890 3.14159 -42",
    "  two leading spaces, trailing  ",
    "\n\nnewlines first\r\nand CRLF",
    "\t\ttabs\tinside",
    "SELECT id FROM items WHERE price > 100;",
    "",
    "x",
]


@pytest.fixture(scope="module")
def model_folder(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spm-only")
    for name in ("config.json", "tokenizer.model", "tokenizer_config.json"):
        shutil.copy(llama_dir / name, folder / name)
    write_tokenizer_json(folder, folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="module")
def processor(model_folder: Path):
    return sentencepiece.SentencePieceProcessor(model_file=str(model_folder / "tokenizer.model"))


@pytest.fixture(scope="module")
def vocab(model_folder: Path) -> HfVocabulary:
    return HfVocabulary(model_folder)


def test_only_sentencepiece_folders_need_one(llama_dir: Path, model_folder: Path) -> None:
    assert needs_tokenizer_json(llama_dir)
    assert not needs_tokenizer_json(model_folder)


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_json_encodes_like_sentencepiece(vocab: HfVocabulary, processor, text: str) -> None:
    assert vocab.tokenize(text, add_special=False) == processor.encode(text)


def test_bos_is_added_as_tokenizer_config_says(vocab: HfVocabulary, processor) -> None:
    assert vocab.tokenize("hello", add_special=True) == [processor.bos_id(), *processor.encode("hello")]
    assert vocab.bos_token_id == 1 and vocab.eos_token_id == 2
    assert vocab.token_text(vocab.bos_token_id) == "<s>" and vocab.token_text(vocab.eos_token_id) == "</s>"


def test_special_token_markup_is_parsed_and_renders_as_nothing(vocab: HfVocabulary) -> None:
    ids = vocab.tokenize("a</s>b", add_special=False)
    assert 2 in ids
    assert vocab.token_bytes(2) == b"" and vocab.token_bytes(1) == b""
    assert vocab.is_end_of_generation(2) and not vocab.is_end_of_generation(ids[0])


@pytest.mark.parametrize("text", TEXTS)
def test_token_bytes_reassemble_the_text(vocab: HfVocabulary, processor, text: str) -> None:
    """Like llama.cpp's pieces: SentencePiece's dummy-prefix space stays on the first token."""
    joined = b"".join(vocab.token_bytes(token) for token in processor.encode(text))
    expected = (" " + text if text else text).encode()
    assert joined == expected


def test_added_tokens_json_entries_become_added_tokens(llama_dir: Path, tmp_path: Path) -> None:
    for name in ("config.json", "tokenizer.model", "tokenizer_config.json"):
        shutil.copy(llama_dir / name, tmp_path / name)
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<|fim|>": 600, "<|end|>": 601}))
    write_tokenizer_json(tmp_path, tmp_path / "tokenizer.json")
    vocab = HfVocabulary(tmp_path)
    assert 600 in vocab.tokenize("x<|fim|>y", add_special=False)
    assert vocab.token_bytes(601) == b"<|end|>"


def test_gaps_in_added_tokens_are_one_line_errors(llama_dir: Path, tmp_path: Path) -> None:
    shutil.copy(llama_dir / "tokenizer.model", tmp_path / "tokenizer.model")
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<|fim|>": 605}))
    with pytest.raises(TokenizerError, match="must continue at 600 without gaps"):
        write_tokenizer_json(tmp_path, tmp_path / "tokenizer.json")


def test_a_corrupt_sentencepiece_model_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.model").write_bytes(b"\x00garbage")
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        write_tokenizer_json(tmp_path, tmp_path / "tokenizer.json")


def test_byte_level_vocabularies_map_back_to_bytes(tmp_path: Path) -> None:
    """GPT-2-style tokenizer.json (Llama 3, Qwen): `Ġ` is a space, `Ċ` a newline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(vocab={"Ġhi": 0, "Ċ": 1, "Ã©": 2, "h": 3, "i": 4, "Ġ": 5}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": [1, 2], "vocab_size": 6}))
    vocab = HfVocabulary(tmp_path)
    assert [vocab.token_bytes(token) for token in range(3)] == [b" hi", b"\n", "é".encode()]
    assert vocab.end_of_generation_ids == {1, 2}


def test_no_text_takes_fewer_tokens_than_its_length_over_the_longest_token(vocab: HfVocabulary) -> None:
    """The engine refuses a prompt longer than context × longest_token_bytes characters without tokenizing it."""
    longest = vocab.longest_token_bytes()
    assert longest >= len(b"</s>")  # special tokens' markup counts: "</s>" in a prompt is one token
    for text in [*TEXTS, "</s>" * 50, " " * 200]:
        assert len(text) <= longest * len(vocab.tokenize(text, add_special=False)) or not text
