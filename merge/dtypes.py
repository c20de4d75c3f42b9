"""Exact float conversions between the on-disk dtypes and float32, without torch.

numpy has no bfloat16, so bfloat16 data travels as uint16 bit patterns. Widening bfloat16 → float32 is exact
(the 16 bits become the upper half of the float32). Narrowing float32 → bfloat16 rounds to nearest, ties to
even, and maps every NaN to 0xFFFF, which is what torch's `.to(torch.bfloat16)` does on CPU; numpy's
float32 → float16 `astype` is IEEE round-to-nearest-even, like torch's `.half()`.
"""

from __future__ import annotations

import numpy as np

# Canonical dtype names (torch's spelling) → safetensors dtype codes.
SAFETENSORS_CODES: dict[str, str] = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
NAMES_BY_CODE: dict[str, str] = {code: name for name, code in SAFETENSORS_CODES.items()}

# How each dtype is held in numpy: bfloat16 as its raw uint16 bits.
STORAGE: dict[str, np.dtype] = {
    "float64": np.dtype("<f8"),
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
}

FLOAT_DTYPES: frozenset[str] = frozenset({"float16", "bfloat16", "float32"})


def itemsize(dtype: str) -> int:
    """Bytes per element of a canonical dtype name."""
    return STORAGE[dtype].itemsize


def widen_to_float32(raw: np.ndarray, dtype: str, out: np.ndarray) -> np.ndarray:
    """Write `raw` (storage form of `dtype`) into the float32 array `out`, exactly; returns `out`."""
    if dtype == "bfloat16":
        np.left_shift(raw, 16, out=out.view(np.uint32), dtype=np.uint32)
    else:
        np.copyto(out, raw, casting="unsafe")
    return out


def narrow_from_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """Cast float32 `values` to the storage form of `dtype` with torch's rounding (see module docstring)."""
    if dtype == "float32":
        return values
    if dtype == "float16":
        with np.errstate(over="ignore"):  # out-of-range values become ±inf, silently, as with torch's .half()
            return values.astype(np.float16)
    if dtype != "bfloat16":
        raise ValueError(f"cannot narrow float32 to {dtype}")
    bits = values.view(np.uint32)
    rounded = bits >> 16
    rounded &= 1
    rounded += 0x7FFF
    rounded += bits
    rounded >>= 16
    rounded[np.isnan(values)] = 0xFFFF
    return rounded.astype(np.uint16)
