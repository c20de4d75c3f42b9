"""Readers for the small structured parts of model folders: JSON files and safetensors headers.

The merge, the converters, format detection and the EXL2 vocabulary all read `config.json`-style files and
safetensors headers; they share these readers so every caller gets the same checks and the same one-line
messages naming the file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from codebooga.merge.errors import MergeError, first_line

MAX_SAFETENSORS_HEADER_BYTES = 100 * 1024 * 1024


class UnreadableFileError(MergeError):
    """A JSON file or safetensors header that is missing, unreadable or malformed; the message names the file."""


def read_json_object(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """A file holding one JSON object. A missing file is an error, or `{}` when `missing_ok` (optional files
    such as `generation_config.json`)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise UnreadableFileError(f"missing {path.name} in {path.parent}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableFileError(f"cannot read {path}: {first_line(error)}") from None
    if not isinstance(value, dict):
        raise UnreadableFileError(f"{path} does not hold a JSON object")
    return value


def read_safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """A safetensors file's JSON header (tensor name → dtype, shape, data offsets; plus `__metadata__`) and the
    byte offset where tensor data starts. Reads only the header: a few KB, whatever the file's size."""
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise UnreadableFileError(f"{path} is too short to be a safetensors file")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_SAFETENSORS_HEADER_BYTES:
                raise UnreadableFileError(f"{path} has an implausible safetensors header ({length} bytes)")
            raw = handle.read(length)
    except OSError as error:
        raise UnreadableFileError(f"cannot read {path}: {first_line(error)}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UnreadableFileError(f"{path} has a corrupt safetensors header") from None
    if not isinstance(header, dict):
        raise UnreadableFileError(f"{path} has a corrupt safetensors header")
    return header, 8 + length
