"""Helpers for the EXL2 tests (a module, not conftest, so test files can import it by a unique name)."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def gpu_skip_reason() -> str | None:
    """Why the GPU tests can't run here (None when they can): CUDA and exllamav2 are both required."""
    from server.engine.exllamav2.availability import missing_requirement

    return missing_requirement()


def write_safetensors_header(path: Path, names: list[str]) -> None:
    """A valid safetensors file whose tensors (1 byte each) have the given names: enough for format detection."""
    header = {name: {"dtype": "U8", "shape": [1], "data_offsets": [index, index + 1]} for index, name in enumerate(names)}
    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data + bytes(len(names)))

