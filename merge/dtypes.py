"""Exact float conversions between the on-disk dtypes and float32; torch speeds them up but is optional.

numpy has no bfloat16, so bfloat16 data travels as uint16 bit patterns. Widening bfloat16 → float32 is exact
(the 16 bits become the upper half of the float32). Narrowing float32 → bfloat16 rounds to nearest, ties to
even, and maps every NaN to 0xFFFF, which is what torch's `.to(torch.bfloat16)` does on CPU; numpy's
float32 → float16 `astype` is IEEE round-to-nearest-even, like torch's `.half()`. When torch is installed the
16-bit conversions go through it instead (same bits, about ten times faster than numpy's scalar loops), as
soon as a background import started by `start_torch_import()` has finished.
"""

from __future__ import annotations

import threading
from typing import Any

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


def widen_to_float32(raw: np.ndarray, dtype: str, out: np.ndarray) -> np.ndarray:
    """Write `raw` (storage form of `dtype`) into the float32 array `out`, exactly; returns `out`."""
    torch_dtype = _ACCELERATOR.dtype(dtype)
    if torch_dtype is not None and raw.flags.writeable and raw.flags.c_contiguous:
        torch = _ACCELERATOR.module
        torch.from_numpy(out).copy_(torch.from_numpy(raw).view(torch_dtype))
    elif dtype == "bfloat16":
        np.left_shift(raw, 16, out=out.view(np.uint32), dtype=np.uint32)
    else:
        np.copyto(out, raw, casting="unsafe")
        if dtype == "float16":
            # torch quiets signalling NaNs when widening float16; numpy keeps them. Match torch.
            nan = np.isnan(out)
            if nan.any():
                out.view(np.uint32)[nan] |= np.uint32(0x00400000)
    return out


def narrow_from_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """Cast float32 `values` to the storage form of `dtype` with torch's rounding (see module docstring)."""
    if dtype == "float32":
        return values
    if dtype not in ("float16", "bfloat16"):
        raise ValueError(f"cannot narrow float32 to {dtype}")
    torch_dtype = _ACCELERATOR.dtype(dtype)
    if torch_dtype is not None and values.flags.writeable and values.flags.c_contiguous:
        out = np.empty(values.shape, dtype=STORAGE[dtype])
        torch = _ACCELERATOR.module
        torch.from_numpy(out).view(torch_dtype).copy_(torch.from_numpy(values))
        return out
    if dtype == "float16":
        with np.errstate(over="ignore"):  # out-of-range values become ±inf, silently, as with torch's .half()
            return values.astype(np.float16)
    bits = values.view(np.uint32)
    rounded = bits >> 16
    rounded &= 1
    rounded += 0x7FFF
    rounded += bits
    rounded >>= 16
    rounded[np.isnan(values)] = 0xFFFF
    return rounded.astype(np.uint16)


def start_torch_import() -> None:
    """Begin importing torch in a background thread; conversions use it once (and if) the import is done.

    Importing torch costs about a second of CPU, which would dominate merging a small model; the conversions
    never wait for it and run on numpy until then. Pair with `finish_torch_import()` before exiting.
    """
    _ACCELERATOR.start()


def finish_torch_import() -> None:
    """Wait for a background torch import started by `start_torch_import` (so no thread outlives the work)."""
    _ACCELERATOR.wait()


class _TorchAccelerator:
    """Holds torch once a background import has completed; `module` is None before that or without torch."""

    def __init__(self) -> None:
        self.module: Any = None
        self._dtypes: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._import, name="import-torch", daemon=True)
                self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def dtype(self, name: str) -> Any:
        """The torch dtype for a 16-bit format once torch is ready, else None."""
        return self._dtypes.get(name) if self.module is not None else None

    def _import(self) -> None:
        try:
            import torch
        except ImportError:
            return
        # Our worker threads already run chunks in parallel; torch's own intra-op threads on top of them only
        # oversubscribe the cores (its OpenMP workers spin-wait, which made merges several times slower).
        torch.set_num_threads(1)
        self._dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
        self.module = torch


_ACCELERATOR = _TorchAccelerator()
