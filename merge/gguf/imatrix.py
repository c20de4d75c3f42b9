"""Importance-matrix files (from `llama-imatrix`) loaded into the C array `llama_model_quantize` takes.

llama.cpp's quantize tool parses these files in C++ before calling the library; through llama-cpp-python we only
have the library call, so the two on-disk formats (the GGUF one and the older `.dat` one) are read here.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GGUFError

GGUF_MAGIC = b"GGUF"


def _from_gguf(path: Path) -> dict[str, np.ndarray]:
    """Mean squared activations per column: `<name>.in_sum2` divided by `<name>.counts` (per expert)."""
    from gguf import GGUFReader

    tensors = {tensor.name: np.asarray(tensor.data, dtype=np.float32).ravel() for tensor in GGUFReader(path).tensors}
    entries = {}
    for name in (key.removesuffix(".in_sum2") for key in tensors if key.endswith(".in_sum2")):
        sums, counts = tensors[f"{name}.in_sum2"], tensors.get(f"{name}.counts")
        if counts is None:
            raise GGUFError(f"{path}: entry {name} has sums but no counts")
        per_expert = sums.reshape(len(counts), -1)
        safe_counts = np.where(counts > 0, counts, 1.0)[:, None]
        entries[name] = np.where(counts[:, None] > 0, per_expert / safe_counts, 1.0).astype(np.float32).ravel()
    return entries


def _from_legacy(path: Path) -> dict[str, np.ndarray]:
    """The original `.dat` layout: count, then (name, ncall, values) per entry, values pre-multiplied by ncall."""
    data = path.read_bytes()
    try:
        (n_entries,), offset = struct.unpack_from("<i", data), 4
        entries = {}
        for _ in range(n_entries):
            (name_len,) = struct.unpack_from("<i", data, offset)
            name = data[offset + 4 : offset + 4 + name_len].decode("utf-8")
            ncall, nval = struct.unpack_from("<ii", data, offset + 4 + name_len)
            offset += 12 + name_len
            values = np.frombuffer(data, dtype="<f4", count=nval, offset=offset).copy()
            offset += 4 * nval
            entries[name] = values / ncall if ncall > 0 else values
    except (struct.error, ValueError, UnicodeDecodeError):
        raise GGUFError(f"{path}: not an importance matrix (.gguf or legacy .dat) file") from None
    if not entries:
        raise GGUFError(f"{path}: importance matrix has no entries")
    return entries


def load_imatrix(path: Path) -> dict[str, np.ndarray]:
    """Tensor name → float32 importance values, from either file format."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise GGUFError(f"{path}: cannot read importance matrix ({error.strerror})") from None
    entries = _from_gguf(path) if magic == GGUF_MAGIC else _from_legacy(path)
    for name, values in entries.items():
        if not np.all(np.isfinite(values)):
            raise GGUFError(f"{path}: entry {name} contains non-finite values")
    return entries


@contextmanager
def imatrix_param(entries: dict[str, np.ndarray], struct_type: Any) -> Iterator[Any]:
    """A NULL-terminated `llama_model_imatrix_data[]` pointing into `entries`, valid inside the `with` block."""
    keep = [(name.encode("utf-8"), np.ascontiguousarray(values, dtype=np.float32)) for name, values in entries.items()]
    array = (struct_type * (len(keep) + 1))()
    for slot, (name, values) in zip(array, keep):
        slot.name = name
        slot.data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        slot.size = values.size
    yield ctypes.cast(array, ctypes.POINTER(struct_type))
