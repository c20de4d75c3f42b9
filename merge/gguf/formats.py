"""Names of the GGUF output types users can ask for, with no heavy imports so the CLI can list them cheaply."""

from __future__ import annotations

from enum import Enum

from .errors import GGUFError


class OutType(str, Enum):
    """Float types `convert` writes directly; K-quants are made from an F16/F32 file by `quantize`."""

    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    Q8_0 = "q8_0"


# Names accepted by `quantize --type`, as llama.cpp's quantize tool spells them (LLAMA_FTYPE_MOSTLY_<NAME>).
QUANT_TYPES: tuple[str, ...] = (
    "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_1", "Q4_K_S", "Q4_K_M",
    "Q5_0", "Q5_1", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16",
)  # fmt: skip
ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}


def canonical_type(name: str) -> str:
    """Normalise a user-given type name (any case, `Q4_K` alias) or raise with the list of valid ones."""
    upper = name.strip().upper()
    upper = ALIASES.get(upper, upper)
    if upper not in QUANT_TYPES:
        raise GGUFError(f"unknown quantization type {name!r}; choose one of: {', '.join(QUANT_TYPES)}")
    return upper
