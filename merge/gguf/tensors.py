"""Per-tensor rules for LLaMA → GGUF: names, the q/k rope permutation, and the stored type.

Each rule is a pure function of the tensor name, shape and the requested output type, so the whole file layout can
be planned (and its header written) before any tensor data is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import gguf
import numpy as np
from gguf.quants import quantize

from .errors import GGUFError
from .formats import OutType
from .metadata import LlamaHParams

IGNORED_TENSOR_SUFFIXES = ("rotary_emb.inv_freq",)
_LAYER = re.compile(r"\.layers\.(\d+)\.")


GGML_TYPES = {
    OutType.F32: gguf.GGMLQuantizationType.F32,
    OutType.F16: gguf.GGMLQuantizationType.F16,
    OutType.BF16: gguf.GGMLQuantizationType.BF16,
    OutType.Q8_0: gguf.GGMLQuantizationType.Q8_0,
}

FILE_TYPES = {
    OutType.F32: gguf.LlamaFileType.ALL_F32,
    OutType.F16: gguf.LlamaFileType.MOSTLY_F16,
    OutType.BF16: gguf.LlamaFileType.MOSTLY_BF16,
    OutType.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
}


@dataclass(frozen=True)
class TensorPlan:
    """Where one checkpoint tensor goes in the GGUF file and how it is encoded."""

    source: str
    target: str
    shape: tuple[int, ...]
    ggml_type: gguf.GGMLQuantizationType
    permute_heads: int | None

    @property
    def nbytes(self) -> int:
        block_size, type_size = gguf.GGML_QUANT_SIZES[self.ggml_type]
        rows = int(np.prod(self.shape[:-1], dtype=np.int64))
        return rows * (self.shape[-1] // block_size) * type_size


def is_ignored(name: str) -> bool:
    """Buffers some old `.bin` checkpoints carry that llama.cpp recomputes itself."""
    return name.endswith(IGNORED_TENSOR_SUFFIXES)


def _file_order(plan: TensorPlan) -> tuple[int, int, str]:
    """llama.cpp's converter order: token embedding, then layer by layer, then the output norm and head."""
    match = _LAYER.search(plan.source)
    if match:
        return 1, int(match.group(1)), plan.target
    return (2 if plan.target.startswith("output") else 0), 0, plan.target


def _stored_type(shape: Sequence[int], outtype: OutType) -> gguf.GGMLQuantizationType:
    """Norms (1-D) stay F32; Q8_0 falls back to F16 for rows that are not whole 32-value blocks."""
    if len(shape) == 1:
        return gguf.GGMLQuantizationType.F32
    ggml_type = GGML_TYPES[outtype]
    block_size, _ = gguf.GGML_QUANT_SIZES[ggml_type]
    if shape[-1] % block_size:
        return gguf.GGMLQuantizationType.F16
    return ggml_type


def plan_tensors(shapes: dict[str, tuple[int, ...]], hparams: LlamaHParams, outtype: OutType) -> list[TensorPlan]:
    """Map every checkpoint tensor to its GGUF name and type, in llama.cpp's conventional order.

    Raises `GGUFError` for tensors a LLaMA model should not have, so a wrong checkpoint fails before any
    output is written.
    """
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, hparams.block_count)
    permuted = {"attn_q": hparams.head_count, "attn_k": hparams.head_count_kv}
    plans = []
    for source, shape in shapes.items():
        if is_ignored(source):
            continue
        target = name_map.get_name(source, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise GGUFError(f"tensor {source!r} is not part of a LLaMA model")
        kind = target.split(".")[-2]
        plans.append(TensorPlan(source, target, tuple(shape), _stored_type(shape, outtype), permuted.get(kind)))
    return sorted(plans, key=_file_order)


def permute_for_rope(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder q/k projection rows from HF's rotate-half layout to llama.cpp's interleaved rope layout."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def encode(data: np.ndarray, ggml_type: gguf.GGMLQuantizationType, permute_heads: int | None) -> np.ndarray:
    """Turn float32 rows into the exact bytes (as a numpy array) of `ggml_type`, permuting q/k rows first."""
    if permute_heads is not None:
        data = permute_for_rope(data, permute_heads)
    if ggml_type == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if ggml_type == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return quantize(np.ascontiguousarray(data, dtype=np.float32), ggml_type)
