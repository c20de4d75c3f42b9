"""`SamplingParams` → `ExLlamaV2Sampler.Settings`, with every field set.

ExLlamaV2's defaults are not OpenAI's (temperature 0.8, top_p 0.8, top_k 50, repetition penalty 1.025), so nothing
is left to them. `sampler_fields` is a pure function returning plain values (tested without exllamav2); only
`make_settings` touches exllamav2 and torch.

Semantics follow the llama.cpp backend so that the same request behaves the same on both: penalties over the last
`penalty_last_n` tokens, truncation (top-k, top-p, min-p, typical) on the untempered distribution and temperature
last (llama.cpp's chain order; `temperature_last=True`), temperature 0 as greedy (top_k=1). Samplers llama.cpp's
chain doesn't run (top-a, TFS, mirostat, DRY, XTC, smoothing, skew, dynamic temperature) are switched off.
"""

from __future__ import annotations

from typing import Any

from codebooga.server.engine.types import SamplingParams


def sampler_fields(params: SamplingParams) -> dict[str, Any]:
    """Every `ExLlamaV2Sampler.Settings` field for these params; `token_bias` as {token id: bias} or None."""
    penalised = params.penalty_last_n != 0
    greedy = params.greedy
    return {
        "token_repetition_penalty": params.repetition_penalty if penalised else 1.0,
        "token_repetition_range": params.penalty_last_n if penalised else 0,  # -1: the whole context
        "token_repetition_decay": 0,
        "token_frequency_penalty": params.frequency_penalty if penalised else 0.0,
        "token_presence_penalty": params.presence_penalty if penalised else 0.0,
        "temperature": 1.0 if greedy else params.temperature,
        "smoothing_factor": 0.0,
        "min_temp": 0.0,
        "max_temp": 0.0,
        "temp_exponent": 1.0,
        "top_k": 1 if greedy else max(params.top_k, 0),
        "top_p": 0.0 if greedy or params.top_p >= 1.0 else params.top_p,
        "top_a": 0.0,
        "min_p": 0.0 if greedy else params.min_p,
        "tfs": 0.0,
        "typical": 0.0 if greedy or params.typical_p >= 1.0 else params.typical_p,
        "skew": 0.0,
        "temperature_last": True,
        "mirostat": False,
        "mirostat_tau": 1.5,
        "mirostat_eta": 0.1,
        "mirostat_mu": None,
        "token_bias": dict(params.logit_bias) if params.logit_bias else None,
        "cfg_scale": None,
        "post_sampling_hooks": [],
        "dry_allowed_length": 2,
        "dry_base": 1.75,
        "dry_multiplier": 0.0,
        "dry_sequence_breakers": None,
        "dry_range": 0,
        "dry_max_ngram": 20,
        "xtc_probability": 0.0,
        "xtc_threshold": 0.1,
        "xtc_ignore_tokens": None,
    }


def job_seed(params: SamplingParams, choice: int) -> int | None:
    """Per-choice seed: choice i of a seeded request uses seed + i (as the llama.cpp backend does)."""
    return None if params.seed is None else (params.seed + choice) & 0xFFFFFFFF


def make_settings(params: SamplingParams, padded_vocab_size: int) -> Any:
    """An `ExLlamaV2Sampler.Settings` with every field from `sampler_fields`; the bias as a dense CPU tensor
    (exllamav2 adds it to the padded logits row)."""
    import torch
    from exllamav2.generator import ExLlamaV2Sampler

    fields = sampler_fields(params)
    bias = fields.pop("token_bias")
    settings = ExLlamaV2Sampler.Settings()
    for name, value in fields.items():
        if not hasattr(settings, name):
            raise AttributeError(f"ExLlamaV2Sampler.Settings has no field {name!r}: exllamav2 version mismatch")
        setattr(settings, name, value)
    if bias:
        dense = torch.zeros((padded_vocab_size,), dtype=torch.float)
        for token_id, value in bias.items():
            if 0 <= token_id < padded_vocab_size:
                dense[token_id] = value
        settings.token_bias = dense
    else:
        settings.token_bias = None
    return settings
