"""Native llama.cpp sampler chains built from `SamplingParams`, and logprobs read from the raw logits."""

from __future__ import annotations

import ctypes
import secrets

import llama_cpp as llama
import numpy as np

from server.engine.types import SamplingParams


class SamplerChain:
    """One sequence's sampler chain: logit bias, penalties, truncation, temperature, then a seeded draw.

    The order matches llama.cpp's own default chain, so results agree with llama-server for the same settings.
    """

    def __init__(self, params: SamplingParams, n_vocab: int, seed_offset: int = 0) -> None:
        self.handle = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        if params.logit_bias:
            biases = (llama.llama_logit_bias * len(params.logit_bias))()
            for slot, (token, bias) in enumerate(params.logit_bias):
                biases[slot].token = token
                biases[slot].bias = bias
            self._add(llama.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), biases))
        if (
            params.repetition_penalty != 1.0
            or params.frequency_penalty != 0.0
            or params.presence_penalty != 0.0
        ):
            self._add(
                llama.llama_sampler_init_penalties(
                    n_vocab,
                    params.penalty_last_n,
                    params.repetition_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                )
            )
        if params.greedy:
            self._add(llama.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            self._add(llama.llama_sampler_init_top_k(params.top_k))
        if params.typical_p < 1.0:
            self._add(llama.llama_sampler_init_typical(params.typical_p, 1))
        if params.top_p < 1.0:
            self._add(llama.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            self._add(llama.llama_sampler_init_min_p(params.min_p, 1))
        self._add(llama.llama_sampler_init_temp(params.temperature))
        seed = secrets.randbits(32) if params.seed is None else (params.seed + seed_offset) & 0xFFFFFFFF
        if seed == 0xFFFFFFFF:  # llama.cpp reads this value as "pick a random seed"
            seed = 0
        self._add(llama.llama_sampler_init_dist(seed))

    def _add(self, sampler: llama.llama_sampler_p) -> None:
        llama.llama_sampler_chain_add(self.handle, sampler)

    def accept(self, token_id: int) -> None:
        """Tell penalty samplers about a token already in the context (prompt tokens)."""
        llama.llama_sampler_accept(self.handle, token_id)

    def sample(self, context: llama.llama_context_p, batch_index: int) -> int:
        return llama.llama_sampler_sample(self.handle, context, batch_index)

    def free(self) -> None:
        if self.handle:
            llama.llama_sampler_free(self.handle)
            self.handle = None


def token_logprobs(
    context: llama.llama_context_p, batch_index: int, n_vocab: int, token_id: int, top_n: int
) -> tuple[float, tuple[tuple[int, float], ...]]:
    """The chosen token's log-probability under the model and the `top_n` most likely tokens, best first."""
    pointer = llama.llama_get_logits_ith(context, batch_index)
    logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
    shifted = logits - logits.max()
    log_normalizer = np.log(np.exp(shifted, dtype=np.float64).sum())
    chosen = float(shifted[token_id] - log_normalizer)
    if top_n <= 0:
        return chosen, ()
    best = np.argpartition(-shifted, top_n)[:top_n]
    best = best[np.argsort(-shifted[best], kind="stable")]
    return chosen, tuple((int(token), float(shifted[token] - log_normalizer)) for token in best)
