"""Whether this machine can run exllamav2, answered in one actionable line before anything slow starts.

Serving an EXL2 model and quantizing to EXL2 both need it; each caller says what needs it, so the message reads
"EXL2 models need ..." or "quantize-exl2 needs ..." without anyone rewriting anyone's text.
"""

from __future__ import annotations

import importlib.util

EXL2_EXTRA_HINT = "pip install 'codebooga[exl2]'"


def missing_exl2_requirement() -> str | None:
    """None when exllamav2 can run here; otherwise what is missing and what to do, as the end of a sentence
    "<who> need(s) ..." (no GPU is reported first: no install fixes that).

    Imports torch (seconds), so callers only ask once EXL2 was actually chosen.
    """
    if importlib.util.find_spec("torch") is None:
        return f"torch and exllamav2 with CUDA: {EXL2_EXTRA_HINT}"
    import torch

    if not torch.cuda.is_available():
        return (
            "an NVIDIA GPU with CUDA, but torch sees none (torch.cuda.is_available() is False); "
            "GGUF models run on any CPU"
        )
    if importlib.util.find_spec("exllamav2") is None:
        return f"exllamav2: {EXL2_EXTRA_HINT}"
    return None
