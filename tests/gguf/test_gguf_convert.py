"""`convert`: the GGUF header says what llama.cpp needs, and every input flavour gives the same tensors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import sentencepiece

from codebooga.merge.errors import MergeError
from codebooga.merge.gguf import convert as convert_module
from codebooga.merge.gguf.convert import convert
from codebooga.merge.gguf.formats import OutType


REPO_ROOT = Path(__file__).resolve().parents[2]
VOCAB_SIZE = 608


def fields(path: Path) -> dict[str, Any]:
    return {name: field.contents() for name, field in gguf.GGUFReader(path).fields.items()}


def tensor_types(path: Path) -> dict[str, str]:
    return {tensor.name: tensor.tensor_type.name for tensor in gguf.GGUFReader(path).tensors}


def tensor_data(path: Path) -> dict[str, np.ndarray]:
    return {tensor.name: np.array(tensor.data) for tensor in gguf.GGUFReader(path).tensors}


def test_llama_metadata(f32_gguf: Path, llama_dir: Path) -> None:
    meta = fields(f32_gguf)
    expected = {
        "general.architecture": "llama",
        "general.file_type": int(gguf.LlamaFileType.ALL_F32),
        "general.quantization_version": 2,
        "llama.context_length": 256,
        "llama.embedding_length": 256,
        "llama.block_count": 2,
        "llama.feed_forward_length": 512,
        "llama.attention.head_count": 8,
        "llama.attention.head_count_kv": 2,
        "llama.rope.freq_base": 1_000_000.0,
        "llama.rope.dimension_count": 32,
        "llama.vocab_size": VOCAB_SIZE,
    }
    assert {key: meta[key] for key in expected} == expected
    assert meta["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert meta["general.name"] == llama_dir.name


def test_vocab_and_special_tokens(f32_gguf: Path, tokenizer_model: Path) -> None:
    meta = fields(f32_gguf)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model))
    pieces = processor.vocab_size()
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.pre"] == "default"
    assert len(meta["tokenizer.ggml.tokens"]) == VOCAB_SIZE
    assert meta["tokenizer.ggml.tokens"][:pieces] == [processor.id_to_piece(i) for i in range(pieces)]
    assert meta["tokenizer.ggml.tokens"][pieces:] == [f"[PAD{i}]" for i in range(VOCAB_SIZE - pieces)]
    assert meta["tokenizer.ggml.scores"][:pieces] == pytest.approx([processor.get_score(i) for i in range(pieces)])
    types = meta["tokenizer.ggml.token_type"]
    assert types[:3] == [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    assert types[3:259] == [gguf.TokenType.BYTE] * 256
    assert set(types[259:pieces]) == {gguf.TokenType.NORMAL}
    assert set(types[pieces:]) == {gguf.TokenType.UNUSED}
    assert meta["tokenizer.ggml.unknown_token_id"] == 0
    assert meta["tokenizer.ggml.bos_token_id"] == 1
    assert meta["tokenizer.ggml.eos_token_id"] == 2
    assert "tokenizer.ggml.padding_token_id" not in meta
    assert meta["tokenizer.ggml.add_bos_token"] is True
    assert meta["tokenizer.ggml.add_eos_token"] is False


def test_alpaca_template_is_embedded_verbatim(f32_gguf: Path) -> None:
    alpaca = (REPO_ROOT / "prompts" / "alpaca.jinja").read_text(encoding="utf-8")
    assert fields(f32_gguf)["tokenizer.chat_template"] == alpaca


@pytest.mark.parametrize(
    ("outtype", "matrix_type", "file_type"),
    [
        (OutType.F16, "F16", gguf.LlamaFileType.MOSTLY_F16),
        (OutType.BF16, "BF16", gguf.LlamaFileType.MOSTLY_BF16),
        (OutType.Q8_0, "Q8_0", gguf.LlamaFileType.MOSTLY_Q8_0),
    ],
)
def test_norms_stay_f32_and_matrices_take_the_outtype(
    llama_dir: Path, tmp_path: Path, outtype: OutType, matrix_type: str, file_type: int
) -> None:
    path = convert(llama_dir, tmp_path / "out.gguf", outtype, progress=False)
    types = tensor_types(path)
    assert len(types) == 3 + 2 * 9
    assert {name: kind for name, kind in types.items() if name.endswith("norm.weight")} == {
        "output_norm.weight": "F32", "blk.0.attn_norm.weight": "F32", "blk.0.ffn_norm.weight": "F32",
        "blk.1.attn_norm.weight": "F32", "blk.1.ffn_norm.weight": "F32",
    }  # fmt: skip
    assert {kind for name, kind in types.items() if not name.endswith("norm.weight")} == {matrix_type}
    assert fields(path)["general.file_type"] == file_type


@pytest.mark.parametrize(("dtype", "fmt"), [("float16", "safetensors"), ("bfloat16", "bin"), ("float32", "bin")])
def test_bin_and_half_precision_checkpoints_convert_to_the_same_tensors(
    make_checkpoint: Callable[..., Path], tmp_path: Path, dtype: str, fmt: str
) -> None:
    reference = make_checkpoint(seed=7, dtype=dtype)
    variant = make_checkpoint(seed=7, dtype=dtype, fmt=fmt)
    reference = convert(reference, tmp_path / "safetensors.gguf", OutType.F32, progress=False)
    variant = convert(variant, tmp_path / "variant.gguf", OutType.F32, progress=False)
    expected, actual = tensor_data(reference), tensor_data(variant)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def test_row_chunking_does_not_change_the_output(
    llama_dir: Path, f32_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of one attention head (32 rows x 1 KiB) exercise the per-chunk q/k permutation."""
    monkeypatch.setattr(convert_module, "CHUNK_BYTES", 1024)
    chunked = convert(llama_dir, tmp_path / "chunked.gguf", OutType.F32, progress=False)
    assert chunked.read_bytes() == f32_gguf.read_bytes()


def copy_model(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def edit_config(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))


def test_rope_theta_from_an_older_top_level_config(llama_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(llama_dir, tmp_path / "old-style")
    edit_config(folder, rope_parameters=None, rope_theta=500_000.0, rope_scaling=None)
    meta = fields(convert(folder, tmp_path / "old.gguf", progress=False))
    assert meta["llama.rope.freq_base"] == 500_000.0
    assert "llama.rope.scaling.type" not in meta


def test_linear_rope_scaling_is_written(llama_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(llama_dir, tmp_path / "scaled")
    edit_config(folder, rope_parameters={"rope_theta": 10_000.0, "rope_type": "linear", "factor": 4.0})
    meta = fields(convert(folder, tmp_path / "scaled.gguf", progress=False))
    assert (meta["llama.rope.freq_base"], meta["llama.rope.scaling.type"], meta["llama.rope.scaling.factor"]) == (
        10_000.0, "linear", 4.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda folder: (folder / "tokenizer.model").unlink(), "tokenizer.model: not found"),
        (lambda folder: (folder / "tokenizer.model").write_bytes(b"junk"), "not a SentencePiece model"),
        (lambda folder: (folder / "config.json").unlink(), "missing config.json"),
        (lambda folder: edit_config(folder, architectures=["MistralForCausalLM"]), "MistralForCausalLM is not"),
        (lambda folder: edit_config(folder, num_hidden_layers=3), "lacks model.layers.2."),
        (lambda folder: edit_config(folder, vocab_size=100), "600 tokens but config.json vocab_size is 100"),
        (lambda folder: (folder / "model.safetensors").unlink(), "no model weights"),
    ],
    ids=["no-tokenizer", "bad-tokenizer", "no-config", "wrong-arch", "missing-layer", "vocab-too-small", "no-weights"],
)
def test_bad_inputs_fail_in_one_line_and_write_nothing(
    llama_dir: Path, tmp_path: Path, breakage: Any, message: str
) -> None:
    folder = copy_model(llama_dir, tmp_path / "broken")
    breakage(folder)
    output = tmp_path / "out" / "model.gguf"
    with pytest.raises(MergeError) as info:
        convert(folder, output, progress=False)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not output.parent.exists() or not any(output.parent.iterdir())


def test_added_tokens_extend_the_vocab_as_user_defined(llama_dir: Path, tmp_path: Path) -> None:
    """WizardCoder-Python-34B ships `added_tokens.json` with a `[PAD]` token at id 32000; same shape here."""
    import llama_cpp

    folder = copy_model(llama_dir, tmp_path / "added")
    (folder / "added_tokens.json").write_text(json.dumps({"<extra_sep>": 600}))
    path = convert(folder, tmp_path / "added.gguf", progress=False)
    meta = fields(path)
    assert meta["tokenizer.ggml.tokens"][600] == "<extra_sep>"
    assert meta["tokenizer.ggml.token_type"][600] == gguf.TokenType.USER_DEFINED
    assert meta["tokenizer.ggml.tokens"][601] == "[PAD0]"
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    assert 600 in vocab.tokenize(b"left<extra_sep>right", add_bos=False, special=False)
