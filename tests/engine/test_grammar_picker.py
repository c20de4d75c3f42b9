"""Grammar-constrained picks: the fast path (check the chain's pick, resample only when refused) must pick
exactly what llama.cpp's own chain with the grammar applied first picks when greedy, and every pick sampled at
the Divine Intellect preset must keep the text inside the grammar."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import llama_cpp as llama
import pytest
from llama_batches import put_tokens

from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.chat.tool_calls import ToolCallReader
from codebooga.server.engine.chat.types import ToolCallDelta, ToolFunction
from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel
from codebooga.server.engine.llama_cpp.sampling import (
    GrammarError,
    GrammarPicker,
    NativeGrammar,
    SamplerChain,
    TokenPicker,
)
from codebooga.server.engine.structured.answer_grammar import tool_call_grammar
from codebooga.server.engine.types import Grammar, SamplingParams

PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 24}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}
PROMPT = "Call get_weather for Paris for 3 days. Answer with <tool_call>"
DIVINE_INTELLECT = SamplingParams(temperature=1.31, top_p=0.14, top_k=49, repetition_penalty=1.17)


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaCppModel]:
    loaded = LlamaCppModel(embedded_model_path(), ContextOptions(n_ctx_per_seq=256, n_parallel=1, n_threads=2))
    try:
        yield loaded
    finally:
        loaded.close()


def grammar_for(model: LlamaCppModel) -> NativeGrammar:
    grammar = tool_call_grammar((ToolFunction("get_weather", None, PARAMETERS),), "required", False)
    assert grammar is not None
    return NativeGrammar(model.vocab, grammar)


def generate(model: LlamaCppModel, picker: TokenPicker, limit: int = 60) -> str:
    """Decode PROMPT, then let `picker` pick up to `limit` tokens (stopping at end of generation)."""
    batch = llama.llama_batch_init(256, 0, 1)
    try:
        llama.llama_memory_seq_rm(model.memory, 0, -1, -1)
        tokens = model.tokenize(PROMPT, add_special=True)
        batch.n_tokens = put_tokens(batch, 0, tokens, 0)
        text = b""
        for position in range(len(tokens), len(tokens) + limit):
            assert llama.llama_decode(model.context, batch) == 0
            token = picker.pick(model.context, -1, model.output_logits(1)[0])
            if model.is_end_of_generation(token):
                break
            text += model.token_bytes(token)
            batch.n_tokens = put_tokens(batch, 0, [token], position)
        return text.decode("utf-8", errors="replace")
    finally:
        picker.free()
        llama.llama_batch_free(batch)


class GrammarFirstChain:
    """llama.cpp's own way: one chain, the grammar sampler first (the reference the fast path must match)."""

    def __init__(self, grammar: NativeGrammar, params: SamplingParams, n_vocab: int) -> None:
        self._inner = SamplerChain(params, n_vocab)
        self.handle = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        llama.llama_sampler_chain_add(self.handle, grammar.sampler())
        llama.llama_sampler_chain_add(self.handle, self._inner.handle)  # the outer chain now owns the inner one

    def accept(self, token_id: int) -> None:
        llama.llama_sampler_accept(self.handle, token_id)

    def pick(self, context: llama.llama_context_p, batch_index: int, logits: object) -> int:
        return llama.llama_sampler_sample(self.handle, context, batch_index)

    def free(self) -> None:
        llama.llama_sampler_free(self.handle)


def call_of(text: str) -> tuple[str, dict]:
    reader = ToolCallReader(0, content_first=False)
    deltas = [event for event in [*reader.feed(text), *reader.finish()] if isinstance(event, ToolCallDelta)]
    assert reader.completed_calls == 1, text
    return deltas[0].name or "", json.loads("".join(delta.arguments for delta in deltas))


def test_greedy_fast_path_picks_what_llama_cpp_picks(model: LlamaCppModel) -> None:
    greedy = SamplingParams(temperature=0.0)
    fast = generate(model, GrammarPicker(greedy, model.n_vocab, 0, grammar_for(model)))
    reference = generate(model, GrammarFirstChain(grammar_for(model), greedy, model.n_vocab))
    assert fast == reference
    name, arguments = call_of(fast)
    assert name == "get_weather"
    jsonschema.validate(arguments, PARAMETERS)


@pytest.mark.parametrize("seed", range(6))
def test_sampled_calls_stay_inside_the_grammar(model: LlamaCppModel, seed: int) -> None:
    params = SamplingParams(**{**DIVINE_INTELLECT.__dict__, "seed": seed})
    picker = GrammarPicker(params, model.n_vocab, 0, grammar_for(model))
    for token in model.tokenize(PROMPT, add_special=True):  # prompt history reaches the penalties, not the grammar
        picker.accept(token)
    name, arguments = call_of(generate(model, picker, limit=120))
    assert name == "get_weather"
    jsonschema.validate(arguments, PARAMETERS)


def test_a_grammar_llama_cpp_cannot_parse_is_an_error_not_a_crash(model: LlamaCppModel) -> None:
    with pytest.raises(GrammarError):
        NativeGrammar(model.vocab, Grammar('root ::= "unterminated', param="tools")).check()


