"""A `tokenizer.json` for checkpoints that ship only a SentencePiece `tokenizer.model`.

ExLlamaV2 0.3 tokenizes with the Hugging Face `tokenizers` library only and refuses folders without
`tokenizer.json`. LLaMA-1/2-era checkpoints (CodeBooga's parents among them) have just `tokenizer.model`, so one
is generated from the SentencePiece model itself: its pieces, scores and normalizer settings become a `tokenizers`
model, normalizer and decoder that encode exactly like `SentencePieceProcessor.encode`. (transformers' own
converter was used before; its output changed between releases, and 5.17's had no merges at all.) Control and unknown pieces
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

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED = 1, 2, 3, 4  # SentencePiece piece types
_UNIGRAM, _BPE = 1, 2  # SentencePiece model types
_SPACE = "\u2581"  # how SentencePiece writes a space


class TokenizerError(MergeError):
    """The SentencePiece model or its companion files can't be turned into a tokenizer.json; one line."""


def needs_tokenizer_json(model_dir: Path) -> bool:
    """True when the folder has a SentencePiece model but no `tokenizer.json`."""
    return not (model_dir / TOKENIZER_JSON).is_file() and (model_dir / TOKENIZER_MODEL).is_file()


def write_tokenizer_json(model_dir: Path, target: Path) -> Path:
    """Convert `model_dir/tokenizer.model` (+ `added_tokens.json`, `tokenizer_config.json`) into `target`."""
    try:
        from sentencepiece import sentencepiece_model_pb2
        from tokenizers import AddedToken, Tokenizer, processors
    except ImportError as error:
        raise TokenizerError(
            f"writing tokenizer.json needs sentencepiece, protobuf and tokenizers ({first_line(error)}): "
            "pip install 'codebooga[build]'"
        ) from None
    source = model_dir / TOKENIZER_MODEL
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(source.read_bytes())
    except OSError as error:
        raise TokenizerError(f"{source}: {error.strerror or error}") from None
    except Exception as error:  # protobuf's DecodeError has no stable import path across versions
        raise TokenizerError(f"{source}: not a SentencePiece model ({first_line(error)})") from None
    tokenizer = Tokenizer(_model(proto, source))
    tokenizer.normalizer = _normalizer(proto.normalizer_spec)
    tokenizer.decoder = _decoder(proto.normalizer_spec)
    tokenizer.add_special_tokens([
        AddedToken(piece.piece, special=True, normalized=False)
        for piece in proto.pieces if piece.type in (_UNKNOWN, _CONTROL)
    ])  # fmt: skip
    user_defined = [piece.piece for piece in proto.pieces if piece.type == _USER_DEFINED]
    extra = user_defined + _added_tokens(model_dir, len(proto.pieces))
    if extra:
        tokenizer.add_tokens([AddedToken(piece, special=False, normalized=False) for piece in extra])
    config = read_json_object(model_dir / "tokenizer_config.json", missing_ok=True)
    template = _template(proto, config)
    if template is not None:
        tokenizer.post_processor = processors.TemplateProcessing(**template)
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(target))
    return target


def _model(proto: Any, source: Path) -> Any:
    """SentencePiece's BPE or unigram model as the `tokenizers` model that segments the same way."""
    from tokenizers import models

    spec = proto.trainer_spec
    unknown = proto.pieces[spec.unk_id].piece if 0 <= spec.unk_id < len(proto.pieces) else None
    if spec.model_type == _BPE:
        vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
        return models.BPE(
            vocab=vocab, merges=bpe_merges(proto), unk_token=unknown, fuse_unk=True, byte_fallback=spec.byte_fallback
        )
    if spec.model_type == _UNIGRAM:
        pieces = [(piece.piece, piece.score) for piece in proto.pieces]
        return models.Unigram(pieces, unk_id=spec.unk_id if unknown else None, byte_fallback=spec.byte_fallback)
    raise TokenizerError(f"{source}: unsupported SentencePiece model type {spec.model_type} (BPE and unigram are)")


def bpe_merges(proto: Any) -> list[tuple[str, str]]:
    """The merge list that makes a rank-ordered BPE pick the same merges as SentencePiece's BPE, which at each
    step joins the adjacent pair whose joined piece scores highest: every split of a normal piece into two pieces
    is a merge, ranked by the joined piece's score (ties by the parts' ids, as transformers orders them)."""
    ids = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    normal = [piece for piece in proto.pieces if piece.type == _NORMAL]
    ranked = []
    for piece in normal:
        text = piece.piece
        for cut in range(1, len(text)):
            left, right = text[:cut], text[cut:]
            if left in ids and right in ids:
                ranked.append((-piece.score, ids[left], ids[right], left, right))
    return [(left, right) for *_, left, right in sorted(ranked)]


def _normalizer(spec: Any) -> Any:
    """SentencePiece's normalization: its character map (none for LLaMA's identity rule), optional whitespace
    squeezing, the dummy-prefix space, and spaces shown as `▁`."""
    from tokenizers import Regex, normalizers

    steps = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.add_dummy_prefix:
        steps.append(normalizers.Prepend(_SPACE))
    steps.append(normalizers.Replace(" ", _SPACE))
    return normalizers.Sequence(steps)


def _decoder(spec: Any) -> Any:
    from tokenizers import decoders

    steps = [decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if spec.add_dummy_prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    return decoders.Sequence(steps)


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
