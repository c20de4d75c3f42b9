"""The SentencePiece ("llama") vocabulary from `tokenizer.model`, as the GGUF tokenizer keys.

llama.cpp re-implements SentencePiece's BPE from the pieces, scores and token types stored here, so these must come
from the `.model` file itself, not from `tokenizer.json`. Special-token ids and the add-BOS/EOS flags follow the
HF config files when they set them, because that is what transformers uses at inference time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from codebooga.merge.shared.files import read_json_object

from .errors import GGUFError

TOKENIZER_MODEL = "llama"
TOKENIZER_PRE = "default"
ADDED_TOKEN_SCORE = -1000.0


@dataclass
class LlamaVocab:
    """Token pieces, scores and types padded to the model's vocab size, plus special-token settings."""

    tokens: list[bytes]
    scores: list[float]
    token_types: list[int]
    special_ids: dict[str, int] = field(default_factory=dict)
    add_bos: bool = True
    add_eos: bool = False


def _token_type(processor: Any, token_id: int) -> gguf.TokenType:
    if processor.IsUnknown(token_id):
        return gguf.TokenType.UNKNOWN
    if processor.IsControl(token_id):
        return gguf.TokenType.CONTROL
    if processor.IsUnused(token_id):
        return gguf.TokenType.UNUSED
    if processor.IsByte(token_id):
        return gguf.TokenType.BYTE
    return gguf.TokenType.NORMAL


def _load_processor(path: Path) -> Any:
    from sentencepiece import SentencePieceProcessor

    if not path.is_file():
        raise GGUFError(f"{path}: not found (a SentencePiece tokenizer.model is required)")
    processor = SentencePieceProcessor()
    try:
        processor.LoadFromFile(str(path))
    except (OSError, RuntimeError) as error:
        raise GGUFError(f"{path}: not a SentencePiece model ({error})") from None
    return processor


def _added_tokens(model_dir: Path, base_size: int) -> list[str]:
    """Tokens from `added_tokens.json` that extend the SentencePiece vocab, in id order."""
    added = read_json_object(model_dir / "added_tokens.json", missing_ok=True)
    extra = {token_id: piece for piece, token_id in added.items() if token_id >= base_size}
    expected = list(range(base_size, base_size + len(extra)))
    if sorted(extra) != expected:
        raise GGUFError(f"{model_dir / 'added_tokens.json'}: added token ids must continue at {base_size} without gaps")
    return [extra[token_id] for token_id in expected]


def _special_ids(processor: Any, config: dict[str, Any]) -> dict[str, int]:
    ids = {"bos": processor.bos_id(), "eos": processor.eos_id(), "unk": processor.unk_id(), "pad": processor.pad_id()}
    for kind in ("bos", "eos", "pad"):
        value = config.get(f"{kind}_token_id")
        if isinstance(value, int):
            ids[kind] = value
    return {kind: value for kind, value in ids.items() if value >= 0}


def load_vocab(model_dir: Path, config: dict[str, Any], vocab_size: int) -> LlamaVocab:
    """Read `tokenizer.model` (+ `added_tokens.json`, `tokenizer_config.json`) from `model_dir`.

    Pads with `[PADn]` pieces up to `vocab_size` so that the token list matches the embedding rows, as llama.cpp
    requires; a tokenizer larger than the embedding matrix is an error.
    """
    processor = _load_processor(model_dir / "tokenizer.model")
    tokens: list[bytes] = []
    scores: list[float] = []
    token_types: list[int] = []
    for token_id in range(processor.vocab_size()):
        tokens.append(processor.IdToPiece(token_id).encode("utf-8"))
        scores.append(float(processor.GetScore(token_id)))
        token_types.append(int(_token_type(processor, token_id)))
    for piece in _added_tokens(model_dir, processor.vocab_size()):
        tokens.append(piece.encode("utf-8"))
        scores.append(ADDED_TOKEN_SCORE)
        token_types.append(int(gguf.TokenType.USER_DEFINED))
    if len(tokens) > vocab_size:
        raise GGUFError(
            f"{model_dir / 'tokenizer.model'}: {len(tokens)} tokens but config.json vocab_size is {vocab_size}"
        )
    for pad_index in range(vocab_size - len(tokens)):
        tokens.append(f"[PAD{pad_index}]".encode())
        scores.append(ADDED_TOKEN_SCORE)
        token_types.append(int(gguf.TokenType.UNUSED))

    tokenizer_config = read_json_object(model_dir / "tokenizer_config.json", missing_ok=True)
    return LlamaVocab(
        tokens=tokens,
        scores=scores,
        token_types=token_types,
        special_ids=_special_ids(processor, config),
        add_bos=bool(tokenizer_config.get("add_bos_token", True)),
        add_eos=bool(tokenizer_config.get("add_eos_token", False)),
    )


def write_vocab(writer: gguf.GGUFWriter, vocab: LlamaVocab, chat_template: str | None) -> None:
    """Add the `tokenizer.ggml.*` keys and, when given, `tokenizer.chat_template`."""
    writer.add_tokenizer_model(TOKENIZER_MODEL)
    writer.add_tokenizer_pre(TOKENIZER_PRE)
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.token_types)
    setters = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "unk": writer.add_unk_token_id,
        "pad": writer.add_pad_token_id,
    }
    for kind, token_id in vocab.special_ids.items():
        setters[kind](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
