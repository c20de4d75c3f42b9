"""Picking each sequence's next token from the logits of a decode step, and logprobs read from those logits.

Greedy requests without penalties take the highest bias-adjusted logit straight from the logits llama.cpp has
already copied out (`ArgmaxPicker`); everything else runs a native llama.cpp sampler chain (`SamplerChain`).
"""

from __future__ import annotations

import ctypes
import re
import secrets
from dataclasses import dataclass
from typing import Protocol

import llama_cpp as llama
import numpy as np

from codebooga.server.engine.types import Grammar, SamplingParams


class TokenPicker(Protocol):
    def accept(self, token_id: int) -> None: ...

    def pick(self, context: llama.llama_context_p, batch_index: int, logits: np.ndarray) -> int: ...

    def free(self) -> None: ...


def new_token_picker(
    params: SamplingParams, n_vocab: int, seed_offset: int = 0, grammar: NativeGrammar | None = None
) -> TokenPicker:
    """The cheapest picker that gives what llama.cpp's own chain would for these settings."""
    if grammar is not None:
        return GrammarPicker(params, n_vocab, seed_offset, grammar)
    if params.greedy and not params.has_penalties:
        return ArgmaxPicker(params.logit_bias)
    return SamplerChain(params, n_vocab, seed_offset)


class GrammarError(Exception):
    """llama.cpp could not parse a grammar."""


@dataclass(frozen=True)
class NativeGrammar:
    """A grammar and the vocabulary it constrains: llama.cpp matches grammar text against token pieces."""

    vocab: llama.llama_vocab_p
    grammar: Grammar

    def sampler(self) -> llama.llama_sampler_p:
        """A fresh grammar sampler (each sequence walks the grammar on its own). Raises `GrammarError`."""
        gbnf, trigger = self.grammar.gbnf.encode(), self.grammar.trigger
        if trigger is None:
            handle = llama.llama_sampler_init_grammar(self.vocab, gbnf, b"root")
        else:
            # The whole text generated so far must match; the grammar then reads from the trigger (group 1) on.
            patterns = (ctypes.c_char_p * 1)(f"[\\s\\S]*?({re.escape(trigger)})[\\s\\S]*".encode())
            handle = llama.llama_sampler_init_grammar_lazy_patterns(self.vocab, gbnf, b"root", patterns, 1, None, 0)
        if not handle:
            raise GrammarError("llama.cpp could not parse the grammar")
        return handle

    def check(self) -> None:
        """Parse the grammar once, so a bad one is refused before it reaches the decode thread."""
        llama.llama_sampler_free(self.sampler())


class ArgmaxPicker:
    """Greedy decoding without penalties: the first highest logit after `logit_bias`, as llama.cpp's greedy
    sampler picks it. llama.cpp's `llama_sampler_sample` first copies all n_vocab logits into a candidate array
    (about 90 µs a token for a 49k vocabulary on this machine); an argmax over the logits row takes about 10,
    and the decode step waits for every sequence's pick before it can run again.

    Biases that only lower tokens (bans, the usual kind) cannot change a best token they do not touch, so the
    plain argmax stands unless it is a biased token. Otherwise biases are added to the row in place and taken
    off again, rather than to a copy of the row (another ~40 µs a token)."""

    def __init__(self, logit_bias: tuple[tuple[int, float], ...]) -> None:
        self._bias_tokens = np.array([token for token, _ in logit_bias], dtype=np.intp)
        # llama.cpp stores biases as float32 and adds in float32; so must we, to pick the same token.
        self._bias_values = np.array([bias for _, bias in logit_bias], dtype=np.float32)
        self._lowered_only = frozenset(token for token, _ in logit_bias) if all(b <= 0 for _, b in logit_bias) else None

    def accept(self, token_id: int) -> None:
        """Nothing to remember: without penalties the history does not matter."""

    def pick(self, context: llama.llama_context_p, batch_index: int, logits: np.ndarray) -> int:
        if not self._bias_tokens.size:
            return int(logits.argmax())
        if self._lowered_only is not None:
            best = int(logits.argmax())
            if best not in self._lowered_only:
                return best
        unbiased = logits[self._bias_tokens]  # a copy (fancy indexing); the tokens are distinct (a mapping's keys)
        logits[self._bias_tokens] = unbiased + self._bias_values
        try:
            return int(logits.argmax())
        finally:
            logits[self._bias_tokens] = unbiased

    def free(self) -> None:
        """Holds no native resources."""


class SamplerChain:
    """One sequence's sampler chain: logit bias, penalties, truncation, temperature, then a seeded draw.

    The order matches llama.cpp's own default chain, so results agree with llama-server for the same settings.
    """

    def __init__(self, params: SamplingParams, n_vocab: int, seed_offset: int = 0) -> None:
        self.handle = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        self._penalties: llama.llama_sampler_p | None = None
        if params.logit_bias:
            biases = (llama.llama_logit_bias * len(params.logit_bias))()
            for slot, (token, bias) in enumerate(params.logit_bias):
                biases[slot].token = token
                biases[slot].bias = bias
            self._add(llama.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), biases))
        if params.has_penalties:
            self._penalties = llama.llama_sampler_init_penalties(
                n_vocab,
                params.penalty_last_n,
                params.repetition_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
            self._add(self._penalties)
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
        """Tell the penalty sampler about a token already in the context (prompt tokens)."""
        if self._penalties is not None:
            llama.llama_sampler_accept(self._penalties, token_id)

    def pick(self, context: llama.llama_context_p, batch_index: int, logits: np.ndarray) -> int:
        """Runs the chain on the logits of `batch_index` (llama.cpp reads them itself) and accepts the token."""
        return llama.llama_sampler_sample(self.handle, context, batch_index)

    def free(self) -> None:
        if self.handle:
            llama.llama_sampler_free(self.handle)
            self.handle = None


class GrammarPicker:
    """A sampler chain whose every token the grammar allows, at close to the chain's own cost.

    Applying a grammar checks each of the vocabulary's tokens against it (about 15× the rest of the chain for a
    49k vocabulary), so, as llama.cpp's own server does, the chain first picks from all tokens and the grammar
    checks only that one; only when it refuses does the chain run again on the grammar-filtered candidates. A
    greedy pick is the same either way: the best token, if allowed, is the best allowed token.
    """

    def __init__(self, params: SamplingParams, n_vocab: int, seed_offset: int, grammar: NativeGrammar) -> None:
        self._grammar = grammar.sampler()
        self._chain = SamplerChain(params, n_vocab, seed_offset)
        self._token_data = (llama.llama_token_data * n_vocab)()
        self._rows = np.ctypeslib.as_array(self._token_data).view(
            np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        )
        self._token_ids = np.arange(n_vocab, dtype=np.int32)
        self._candidates = llama.llama_token_data_array(self._token_data, n_vocab, -1, False)
        self._one_data = (llama.llama_token_data * 1)()
        self._one = llama.llama_token_data_array(self._one_data, 1, -1, False)

    def accept(self, token_id: int) -> None:
        """Prompt tokens reach the penalties only: the grammar constrains the reply, not the prompt."""
        self._chain.accept(token_id)

    def pick(self, context: llama.llama_context_p, batch_index: int, logits: np.ndarray) -> int:
        token = self._run_chain(logits, constrained=False)
        if not self._allows(token):
            token = self._run_chain(logits, constrained=True)
        llama.llama_sampler_accept(self._grammar, token)
        llama.llama_sampler_accept(self._chain.handle, token)
        return token

    def _run_chain(self, logits: np.ndarray, constrained: bool) -> int:
        rows = self._rows.reshape(-1)
        rows["id"] = self._token_ids  # samplers sort and truncate the array in place
        rows["logit"] = logits
        rows["p"] = 0.0
        candidates = self._candidates
        candidates.size, candidates.selected, candidates.sorted = len(self._token_ids), -1, False
        pointer = ctypes.byref(candidates)
        if constrained:
            llama.llama_sampler_apply(self._grammar, pointer)
        llama.llama_sampler_apply(self._chain.handle, pointer)
        return int(self._token_data[candidates.selected].id)

    def _allows(self, token_id: int) -> bool:
        self._one_data[0].id, self._one_data[0].logit, self._one_data[0].p = token_id, 0.0, 0.0
        self._one.size, self._one.selected, self._one.sorted = 1, -1, False
        llama.llama_sampler_apply(self._grammar, ctypes.byref(self._one))
        return self._one_data[0].logit != float("-inf")

    def free(self) -> None:
        if self._grammar:
            llama.llama_sampler_free(self._grammar)
            self._grammar = None
        self._chain.free()


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
