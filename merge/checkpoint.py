"""Lazy reader for Hugging Face model folders (safetensors or PyTorch `.bin` weights).

Why this exists: merging and GGUF conversion must handle 34B models (~68 GB) in a few hundred MiB of RAM, so
nothing here loads a whole model. Safetensors files are read by parsing their JSON header and memory-mapping
the data with numpy (no torch, no copy until a row range is asked for). PyTorch `.bin` shards are opened with
`torch.load(path, mmap=True, weights_only=True, map_location="cpu")`: the tensors stay on disk behind a memory
map, and the restricted unpickler never runs code from the file.

Public API::

    with open_checkpoint("path/to/model") as ckpt:
        ckpt.format                      # "safetensors" or "pytorch"
        ckpt.config                      # dict parsed from config.json
        ckpt.names                       # tensor names, in storage order
        info = ckpt.info("lm_head.weight")
        info.shape, info.dtype, info.nbytes, info.rows, info.row_nbytes
        ckpt.read("lm_head.weight")                  # whole tensor as float32 numpy
        ckpt.read("lm_head.weight", 0, 1024)         # rows [0, 1024) as float32
        ckpt.read_raw("lm_head.weight", 0, 1024)     # rows in their stored dtype (bfloat16 as uint16 bits)

A folder is recognised by, in order of preference: `model.safetensors.index.json`, `model.safetensors`, other
`*.safetensors` files, `pytorch_model.bin.index.json`, `pytorch_model.bin`, other `*.bin` files. Every problem
raises a `MergeError` with one line that names the file: `CheckpointError` for missing folders or files and
unreadable `.bin` shards, `UnreadableFileError` (from the shared readers) for bad JSON or safetensors headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from codebooga.merge.dtypes import NAMES_BY_CODE, STORAGE, widen_to_float32
from codebooga.merge.errors import MergeError, first_line
from codebooga.merge.shared.files import read_json_object, read_safetensors_header

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
PYTORCH_SINGLE = "pytorch_model.bin"


class CheckpointError(MergeError):
    """A model folder or weight file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class TensorInfo:
    """Where a tensor lives and what it looks like. `dtype` is torch's spelling, e.g. "bfloat16"."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    file: Path

    @property
    def rows(self) -> int:
        """Size of the first dimension (1 for a scalar): the unit of `read(name, start, stop)`."""
        return self.shape[0] if self.shape else 1

    @property
    def row_nbytes(self) -> int:
        """Bytes of one row in the stored dtype."""
        count = 1
        for size in self.shape[1:]:
            count *= size
        return count * STORAGE[self.dtype].itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the whole tensor in the stored dtype."""
        return self.rows * self.row_nbytes


class Checkpoint:
    """An open model folder. Use `open_checkpoint`; close it (or use `with`) to release the memory maps."""

    def __init__(self, folder: Path, fmt: str, sources: dict[str, _Source]) -> None:
        self.folder = folder
        self.format = fmt
        self._sources = sources
        self._config: dict[str, Any] | None = None

    @property
    def names(self) -> list[str]:
        """Every tensor name, in storage order (file by file)."""
        return list(self._sources)

    def __contains__(self, name: object) -> bool:
        return name in self._sources

    def info(self, name: str) -> TensorInfo:
        """Shape, dtype and file of one tensor; `KeyError` if the checkpoint lacks it."""
        return self._sources[name].info

    def tensors(self) -> Iterator[TensorInfo]:
        """Every tensor's info, in storage order."""
        return (source.info for source in self._sources.values())

    @property
    def config(self) -> dict[str, Any]:
        """config.json as a dict; raises `UnreadableFileError` if it is missing or not valid JSON."""
        if self._config is None:
            self._config = read_json_object(self.folder / "config.json")
        return self._config

    def read_raw(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of a tensor in its stored dtype (bfloat16 as uint16 bit patterns).

        The result may be a view of a memory map: treat it as read-only.
        """
        source = self._sources[name]
        start, stop = _row_range(source.info, start, stop)
        return source.read_raw(start, stop)

    def read(
        self, name: str, start: int | None = None, stop: int | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Rows [start, stop) of a float tensor as float32 (exact widening from float16 or bfloat16).

        `out`, if given, is a C-contiguous float32 array of the result's shape that receives the values, so
        a caller processing many chunks can reuse one buffer.
        """
        source = self._sources[name]
        start, stop = _row_range(source.info, start, stop)
        shape = (stop - start, *source.info.shape[1:]) if source.info.shape else ()
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32:
            raise ValueError(f"out has shape {out.shape} {out.dtype}, need {shape} float32")
        return source.read_into(start, stop, out)

    def close(self) -> None:
        """Drop the memory maps (safe to call twice)."""
        for source in self._sources.values():
            source.close()
        self._sources = {}

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def open_checkpoint(folder: str | Path) -> Checkpoint:
    """Open a Hugging Face model folder for lazy reading; every header is parsed and checked up front."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    fmt, files = find_weight_files(folder)
    if fmt == "safetensors":
        sources = _open_safetensors(files)
    else:
        sources = _open_pytorch(files)
    return Checkpoint(folder, fmt, sources)


def find_weight_files(folder: Path) -> tuple[str, list[Path]]:
    """The weight format of a folder and its weight files, preferring safetensors over `.bin`."""
    for fmt, index_name, single_name, pattern in (
        ("safetensors", SAFETENSORS_INDEX, SAFETENSORS_SINGLE, "*.safetensors"),
        ("pytorch", PYTORCH_INDEX, PYTORCH_SINGLE, "*.bin"),
    ):
        index = folder / index_name
        if index.is_file():
            weight_map = read_json_object(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise CheckpointError(f"{index} has no weight_map")
            files = [folder / name for name in dict.fromkeys(weight_map.values())]
            missing = [path.name for path in files if not path.is_file()]
            if missing:
                raise CheckpointError(f"{folder}: {index_name} lists missing file {missing[0]}")
            return fmt, files
        if (folder / single_name).is_file():
            return fmt, [folder / single_name]
        found = sorted(path for path in folder.glob(pattern) if path.is_file())
        if found:
            return fmt, found
    raise CheckpointError(f"no model weights (*.safetensors or *.bin) in {folder}")


def _row_range(info: TensorInfo, start: int | None, stop: int | None) -> tuple[int, int]:
    start = 0 if start is None else start
    stop = info.rows if stop is None else stop
    if not 0 <= start <= stop <= info.rows:
        raise IndexError(f"rows [{start}, {stop}) out of range for {info.name} with {info.rows} rows")
    return start, stop


class _Source:
    """One tensor's bytes: knows how to hand out row ranges."""

    info: TensorInfo

    def read_raw(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def read_into(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        return widen_to_float32(self.read_raw(start, stop), self.info.dtype, out)

    def close(self) -> None:
        """Release references to the file mapping."""


class _SafetensorsSource(_Source):
    def __init__(self, info: TensorInfo, mapping: np.memmap, begin: int) -> None:
        self.info = info
        self._mapping: np.memmap | None = mapping
        self._begin = begin

    def read_raw(self, start: int, stop: int) -> np.ndarray:
        assert self._mapping is not None, "checkpoint is closed"
        row = self.info.row_nbytes
        data = self._mapping[self._begin + start * row : self._begin + stop * row]
        shape = (stop - start, *self.info.shape[1:]) if self.info.shape else ()
        return data.view(STORAGE[self.info.dtype]).reshape(shape)

    def close(self) -> None:
        self._mapping = None


def _open_safetensors(files: list[Path]) -> dict[str, _Source]:
    sources: dict[str, _Source] = {}
    for path in files:
        header, data_start = read_safetensors_header(path)
        size = path.stat().st_size
        # Copy-on-write mapping: reads stay file-backed page cache, and the arrays are writable so torch can
        # wrap them without a copy (nothing ever writes to them).
        mapping = np.memmap(path, dtype=np.uint8, mode="c")
        entries = sorted(
            ((name, entry) for name, entry in header.items() if name != "__metadata__"),
            key=lambda item: item[1]["data_offsets"][0],
        )
        for name, entry in entries:
            info, begin = _parse_header_entry(path, name, entry, data_start, size)
            if name in sources:
                raise CheckpointError(f"tensor {name} appears twice ({sources[name].info.file.name}, {path.name})")
            sources[name] = _SafetensorsSource(info, mapping, begin)
    return sources


def _parse_header_entry(
    path: Path, name: str, entry: Any, data_start: int, file_size: int
) -> tuple[TensorInfo, int]:
    try:
        dtype = NAMES_BY_CODE[entry["dtype"]]
        shape = tuple(int(size) for size in entry["shape"])
        begin, end = (int(offset) for offset in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: unsupported or malformed header entry for tensor {name}") from None
    info = TensorInfo(name=name, shape=shape, dtype=dtype, file=path)
    if end - begin != info.nbytes or data_start + end > file_size:
        raise CheckpointError(f"{path}: data of tensor {name} is truncated or mis-sized")
    return info, data_start + begin


_TORCH_DTYPE_NAMES = {
    "torch.float64": "float64",
    "torch.float32": "float32",
    "torch.float16": "float16",
    "torch.bfloat16": "bfloat16",
    "torch.int64": "int64",
    "torch.int32": "int32",
    "torch.int16": "int16",
    "torch.int8": "int8",
    "torch.uint8": "uint8",
    "torch.bool": "bool",
}


class _TorchSource(_Source):
    def __init__(self, info: TensorInfo, tensor: Any) -> None:
        self.info = info
        self._tensor = tensor

    def read_raw(self, start: int, stop: int) -> np.ndarray:
        import torch

        rows = self._tensor[start:stop] if self.info.shape else self._tensor
        if self.info.dtype == "bfloat16":
            return rows.contiguous().view(torch.int16).numpy().view(np.uint16)
        return rows.contiguous().numpy()

    def read_into(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        import torch

        rows = self._tensor[start:stop] if self.info.shape else self._tensor
        torch.from_numpy(out).copy_(rows)
        return out

    def close(self) -> None:
        self._tensor = None


def _open_pytorch(files: list[Path]) -> dict[str, _Source]:
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"reading PyTorch .bin weights ({files[0].parent}) needs torch: pip install 'codebooga[build]'"
        ) from None
    sources: dict[str, _Source] = {}
    for path in files:
        try:
            state = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
        except Exception as error:  # torch raises many types (UnpicklingError, RuntimeError, EOFError, ...)
            raise CheckpointError(f"cannot read {path}: {first_line(error)}") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} does not hold a state dict")
        for name, tensor in state.items():
            if not isinstance(tensor, torch.Tensor):
                continue
            dtype = _TORCH_DTYPE_NAMES.get(str(tensor.dtype))
            if dtype is None:
                raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {tensor.dtype}")
            if name in sources:
                raise CheckpointError(f"tensor {name} appears twice ({sources[name].info.file.name}, {path.name})")
            info = TensorInfo(name=name, shape=tuple(tensor.shape), dtype=dtype, file=path)
            sources[name] = _TorchSource(info, tensor)
    return sources

