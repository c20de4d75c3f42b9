"""A `tokenizer.json` for checkpoints that ship only a SentencePiece `tokenizer.model`.

ExLlamaV2 0.3 tokenizes with the Hugging Face `tokenizers` library only and refuses folders without
`tokenizer.json`. LLaMA-1/2-era checkpoints (CodeBooga's parents among them) have just `tokenizer.model`, so one
is generated from the SentencePiece model with transformers' SentencePiece converter, which follows the model's
own normalizer settings and so encodes exactly like `SentencePieceProcessor.encode`. Control and unknown pieces
become special added tokens (parsed in text, as llama.cpp does) and `added_tokens.json` entries ordinary added
tokens; the BOS/EOS the tokenizer adds follow `tokenizer_config.json` like transformers does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codebooga.merge.errors import MergeError, first_line
from codebooga.merge.shared.files import read_json_object

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_MODEL = "tokenizer.model"

_UNKNOWN, _CONTROL = 2, 3  # SentencePiece piece types


class TokenizerError(MergeError):
    """The SentencePiece model or its companion files can't be turned into a tokenizer.json; one line."""


def needs_tokenizer_json(model_dir: Path) -> bool:
    """True when the folder has a SentencePiece model but no `tokenizer.json`."""
    return not (model_dir / TOKENIZER_JSON).is_file() and (model_dir / TOKENIZER_MODEL).is_file()


def write_tokenizer_json(model_dir: Path, target: Path) -> Path:
    """Convert `model_dir/tokenizer.model` (+ `added_tokens.json`, `tokenizer_config.json`) into `target`."""
    try:
        from tokenizers import AddedToken, processors
        from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

        proto = import_protobuf().ModelProto()
    except ImportError as error:
        raise TokenizerError(
            f"writing tokenizer.json needs transformers, sentencepiece and protobuf ({first_line(error)}): "
            "pip install 'codebooga[build]'"
        ) from None
    source = model_dir / TOKENIZER_MODEL
    try:
        proto.ParseFromString(source.read_bytes())
    except OSError as error:
        raise TokenizerError(f"{source}: {error.strerror or error}") from None
    except Exception as error:  # protobuf's DecodeError has no stable import path across versions
        raise TokenizerError(f"{source}: not a SentencePiece model ({first_line(error)})") from None
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    tokenizer = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
    if tokenizer is None:
        raise TokenizerError(f"{source}: unsupported SentencePiece model type")
    tokenizer.add_special_tokens([
        AddedToken(piece.piece, special=True, normalized=False)
        for piece in proto.pieces if piece.type in (_UNKNOWN, _CONTROL)
    ])  # fmt: skip
    extra = _added_tokens(model_dir, len(proto.pieces))
    if extra:
        tokenizer.add_tokens([AddedToken(piece, special=False, normalized=False) for piece in extra])
    config = read_json_object(model_dir / "tokenizer_config.json", missing_ok=True)
    template = _template(proto, config)
    if template is not None:
        tokenizer.post_processor = processors.TemplateProcessing(**template)
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(target))
    return target


def _added_tokens(model_dir: Path, base_size: int) -> list[str]:
    """`added_tokens.json` pieces beyond the SentencePiece vocab, in id order (ids must follow on without gaps)."""
    path = model_dir / "added_tokens.json"
    extra = {token_id: piece for piece, token_id in read_json_object(path, missing_ok=True).items() if token_id >= base_size}
    if sorted(extra) != list(range(base_size, base_size + len(extra))):
        raise TokenizerError(f"{path}: added token ids must continue at {base_size} without gaps")
    return [extra[token_id] for token_id in sorted(extra)]


def _template(proto: Any, config: dict[str, Any]) -> dict[str, Any] | None:
    """TemplateProcessing arguments adding BOS/EOS as `add_bos_token` / `add_eos_token` say (LLaMA: BOS only)."""
    spec = proto.trainer_spec
    ends = []
    if config.get("add_bos_token", True) and spec.bos_id >= 0:
        ends.append(("start", proto.pieces[spec.bos_id].piece, spec.bos_id))
    if config.get("add_eos_token", False) and spec.eos_id >= 0:
        ends.append(("end", proto.pieces[spec.eos_id].piece, spec.eos_id))
    if not ends:
        return None
    before = [piece for where, piece, _ in ends if where == "start"]
    after = [piece for where, piece, _ in ends if where == "end"]
    single = [*before, "$A", *after]
    pair = [*before, "$A", *after, *before, "$B:1", *after]
    return {"single": " ".join(single), "pair": " ".join(pair), "special_tokens": [(p, i) for _, p, i in ends]}
