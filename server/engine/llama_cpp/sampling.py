"""Picking each sequence's next token from the logits of a decode step, and logprobs read from those logits.

Greedy requests without penalties take the highest bias-adjusted logit straight from the logits llama.cpp has
already copied out (`ArgmaxPicker`); everything else runs a native llama.cpp sampler chain (`SamplerChain`).
"""

from __future__ import annotations

import secrets
from typing import Protocol

import llama_cpp as llama
import numpy as np

from codebooga.server.engine.types import SamplingParams


class TokenPicker(Protocol):
    def accept(self, token_id: int) -> None: ...

    def pick(self, context: llama.llama_context_p, batch_index: int, logits: np.ndarray) -> int: ...

    def free(self) -> None: ...


def new_token_picker(params: SamplingParams, n_vocab: int, seed_offset: int = 0) -> TokenPicker:
    """The cheapest picker that gives exactly what llama.cpp's own chain would for these settings."""
    if params.greedy and not params.has_penalties:
        return ArgmaxPicker(params.logit_bias)
    return SamplerChain(params, n_vocab, seed_offset)


class ArgmaxPicker:
    """Greedy decoding without penalties: the first highest logit after `logit_bias`, as llama.cpp's greedy
    sampler picks it. llama.cpp's `llama_sampler_sample` first copies all n_vocab logits into a candidate array
    (about 90 µs a token for a 49k vocabulary on this machine); an argmax over the logits row takes about 10,
    and the decode step waits for every sequence's pick before it can run again."""

    def __init__(self, logit_bias: tuple[tuple[int, float], ...]) -> None:
        self._bias_tokens = np.array([token for token, _ in logit_bias], dtype=np.intp)
        # llama.cpp stores biases as float32 and adds in float32; so must we, to pick the same token.
        self._bias_values = np.array([bias for _, bias in logit_bias], dtype=np.float32)

    def accept(self, token_id: int) -> None:
        """Nothing to remember: without penalties the history does not matter."""

    def pick(self, context: llama.llama_context_p, batch_index: int, logits: np.ndarray) -> int:
        if self._bias_tokens.size:
            logits = logits.copy()
            np.add.at(logits, self._bias_tokens, self._bias_values)
        return int(logits.argmax())

    def free(self) -> None:
        """Holds no native resources."""


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
        if params.has_penalties:
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

    def pick(self, context: llama.llama_context_p, batch_index: int, logits: np.ndarray) -> int:
        """Runs the chain on the logits of `batch_index` (llama.cpp reads them itself) and accepts the token."""
        return llama.llama_sampler_sample(self.handle, context, batch_index)

    def free(self) -> None:
        if self.handle:
            llama.llama_sampler_free(self.handle)
            self.handle = None


def token_logprobs(logits: np.ndarray, token_id: int, top_n: int) -> tuple[float, tuple[tuple[int, float], ...]]:
    """The chosen token's log-probability under the model and the `top_n` most likely tokens, best first."""
    shifted = logits - logits.max()
    log_normalizer = np.log(np.exp(shifted, dtype=np.float64).sum())
    chosen = float(shifted[token_id] - log_normalizer)
    if top_n <= 0:
        return chosen, ()
    best = np.argpartition(-shifted, top_n)[:top_n]
    best = best[np.argsort(-shifted[best], kind="stable")]
    return chosen, tuple((int(token), float(shifted[token] - log_normalizer)) for token in best)
