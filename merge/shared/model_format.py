"""Which backend a `--model` path needs: a (GGUF) file → llama.cpp, an EXL2 folder → ExLlamaV2.

An EXL2 folder is a Hugging Face-style folder (config.json + *.safetensors) whose weights are EXL2-quantized.
exllamav2's converter (0.0.11 and later) signs config.json with `quantization_config.quant_method = "exl2"`;
older quants (2023, the seed's among them) lack the signature, so the safetensors headers are checked too: EXL2
linear layers store `*.q_invperm` / `*.q_groups` tensors, which GPTQ and unquantized checkpoints never have.
Only the JSON headers are read (a few KB), never the tensors.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from codebooga.merge.shared.files import UnreadableFileError, read_json_object, read_safetensors_header

EXL2_TENSOR_SUFFIXES = (".q_invperm", ".q_groups")


class ModelFormat(Enum):
    GGUF = "gguf"
    EXL2 = "exl2"


class ModelFormatError(Exception):
    """The path is not a model codebooga can serve; the message is one line saying what it is and what to do."""


def detect_format(path: Path) -> ModelFormat:
    """GGUF or EXL2, from the path alone (cheap: reads at most JSON headers)."""
    if path.is_file():  # llama.cpp says itself, in one line, when a file is not a GGUF it can load
        return ModelFormat.GGUF
    if not path.is_dir():
        raise ModelFormatError(f"--model {path}: no such file or folder")
    if not (path / "config.json").is_file():
        raise ModelFormatError(f"--model {path}: a model folder needs config.json (serve a .gguf file or an EXL2 folder)")
    shards = sorted(path.glob("*.safetensors"))
    if not shards:
        raise ModelFormatError(f"--model {path}: no *.safetensors weights in the folder")
    if is_exl2_config(_read_config(path / "config.json")) or any(_has_exl2_tensors(shard) for shard in shards[:1]):
        return ModelFormat.EXL2
    raise ModelFormatError(
        f"--model {path}: an unquantized Hugging Face folder; convert it first "
        "(`codebooga convert` + `codebooga quantize` for GGUF, or `codebooga quantize-exl2` for EXL2)"
    )


def is_exl2_config(config: dict[str, Any]) -> bool:
    """config.json signed by exllamav2's converter."""
    quantization = config.get("quantization_config")
    return isinstance(quantization, dict) and str(quantization.get("quant_method", "")).lower() == "exl2"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return read_json_object(path)
    except UnreadableFileError as error:
        raise ModelFormatError(f"--model: {error}") from None


def _has_exl2_tensors(shard: Path) -> bool:
    """Whether a safetensors file's header names EXL2 tensors; an unreadable header names none."""
    try:
        header, _ = read_safetensors_header(shard)
    except UnreadableFileError:
        return False
    return any(name.endswith(EXL2_TENSOR_SUFFIXES) for name in header)
