"""Helpers for the EXL2 tests (a module, not conftest, so test files can import it by a unique name)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

# The user-settable fields of exllamav2 0.3.2's ExLlamaV2Sampler.Settings (generator/sampler.py); the ngram_*
# fields are the sampler's own running state. The GPU tests check this list against the installed class.
SETTINGS_FIELDS = {
    "token_repetition_penalty", "token_repetition_range", "token_repetition_decay", "token_frequency_penalty",
    "token_presence_penalty", "temperature", "smoothing_factor", "min_temp", "max_temp", "temp_exponent", "top_k",
    "top_p", "top_a", "min_p", "tfs", "typical", "skew", "temperature_last", "mirostat", "mirostat_tau",
    "mirostat_eta", "mirostat_mu", "token_bias", "cfg_scale", "post_sampling_hooks", "dry_allowed_length",
    "dry_base", "dry_multiplier", "dry_sequence_breakers", "dry_range", "dry_max_ngram", "xtc_probability",
    "xtc_threshold", "xtc_ignore_tokens",
}  # fmt: skip


def gpu_skip_reason() -> str | None:
    """Why the GPU tests can't run here (None when they can): CUDA and exllamav2 are both required."""
    from codebooga.merge.shared.exl2_support import missing_exl2_requirement

    missing = missing_exl2_requirement()
    return None if missing is None else f"EXL2 needs {missing}"


def write_safetensors_header(path: Path, names: list[str]) -> None:
    """A valid safetensors file whose tensors (1 byte each) have the given names: enough for format detection."""
    header = {name: {"dtype": "U8", "shape": [1], "data_offsets": [index, index + 1]} for index, name in enumerate(names)}
    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data + bytes(len(names)))

