"""Whether this machine can run exllamav2, answered in one actionable line before anything slow starts."""

from __future__ import annotations

import importlib.util

EXL2_EXTRA_HINT = "pip install 'codebooga[exl2]'"


def missing_requirement() -> str | None:
    """None when exllamav2 can run here; otherwise why not, as one line (no GPU first: no install fixes that).

    Imports torch (seconds), so callers only ask once an EXL2 model was actually chosen.
    """
    if importlib.util.find_spec("torch") is None:
        return f"EXL2 models need torch and exllamav2 with CUDA: {EXL2_EXTRA_HINT}"
    import torch

    if not torch.cuda.is_available():
        return (
            "EXL2 models need an NVIDIA GPU with CUDA, but torch sees none (torch.cuda.is_available() is False); "
            "serve a GGUF build of the model instead"
        )
    if importlib.util.find_spec("exllamav2") is None:
        return f"EXL2 models need exllamav2: {EXL2_EXTRA_HINT}"
    return None


def has_paged_attention() -> bool:
    """exllamav2 batches several jobs only in paged mode, which needs flash-attn >= 2.5.7."""
    if importlib.util.find_spec("flash_attn") is None:
        return False
    from exllamav2.attn import has_flash_attn_with_paged

    return bool(has_flash_attn_with_paged)
