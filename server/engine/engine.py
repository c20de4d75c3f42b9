"""The engine: prompts in, text events out, over any `Backend`.

It owns everything that must behave the same on every backend: chat template rendering, preset resolution,
context-length checks, the default token budget, detokenization, stop strings, logprobs and usage.

Preparing a prompt (rendering, tokenizing, reading token ids) is CPU work proportional to the request; callers
on an event loop run `chat_prompt`, `text_prompt` and `token_prompt` in a worker thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codebooga.server.engine.backend import Backend, JobStream
from codebooga.server.engine.chat_template import ChatTemplate
from codebooga.server.engine.errors import ContextOverflow, GenerationFailed, InvalidRequest
from codebooga.server.engine.metrics import EngineMetrics
from codebooga.server.engine.presets import PresetBook
from codebooga.server.engine.text_stream import ChoiceText
from codebooga.server.engine.types import (
    BackendJob,
    BackendStats,
    ChoiceFinished,
    EngineEvent,
    GenerationFinished,
    GenerationRequest,
    ModelInfo,
    SampledToken,
    SamplingParams,
    SequenceFailed,
    SequenceFinished,
    TokenLogprob,
    TopLogprob,
    Usage,
)

log = logging.getLogger("codebooga.engine")


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    tokens: tuple[int, ...]
    stop: tuple[str, ...]


class Engine:
    def __init__(
        self, backend: Backend, chat_template: ChatTemplate, presets: PresetBook, default_preset: str
    ) -> None:
        presets.get(default_preset)
        self.backend = backend
        self.chat_template = chat_template
        self.presets = presets
        self.default_preset = default_preset
        self.metrics = EngineMetrics()

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    def stats(self) -> BackendStats:
        return self.backend.stats()

    # --- prompts -------------------------------------------------------------------------------------------

    def chat_prompt(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] = ()
    ) -> ChatPrompt:
        """The rendered, tokenized prompt; `tools` (Hugging Face convention) go to the template as they are."""
        text = self.chat_template.render(
            messages, bos_token=self.info.bos_token, eos_token=self.info.eos_token, tools=tools
        )
        return ChatPrompt(text=text, tokens=self.text_prompt(text, "messages"), stop=self.chat_template.stop)

    def text_prompt(self, text: str, param: str) -> tuple[int, ...]:
        """A prompt's token ids, after `check_prompt_chars`; the exact check against the context follows in
        `generate`."""
        self.check_prompt_chars(text, param)
        return tuple(self.tokenize(text))

    def check_prompt_chars(self, text: str, param: str) -> None:
        """Refuse, before tokenizing it, a text whose character count alone rules out fitting the context:
        tokenizing megabytes takes the CPU that running requests need."""
        info = self.info
        most = info.context_length * info.longest_token_bytes
        if len(text) > most:
            raise ContextOverflow(
                f"This model's maximum context length is {info.context_length} tokens. However, the text is "
                f"{len(text)} characters long, but the model's context holds {info.context_length} tokens of at "
                f"most {info.longest_token_bytes} characters each, so at most {most} characters could ever fit; "
                "shorten it",
                param=param,
            )

    def token_prompt(self, tokens: Sequence[int], param: str) -> tuple[int, ...]:
        """A prompt given as token ids: its length is checked against the context before each id is read."""
        self.budget(len(tokens), None, param)
        self.check_token_ids(tokens, param)
        return tuple(tokens)

    def tokenize(self, text: str) -> list[int]:
        return self.backend.tokenize(text, add_special=True)

    def check_token_ids(self, tokens: Sequence[int], param: str) -> None:
        vocab_size = self.info.vocab_size
        for token in tokens:
            if not 0 <= token < vocab_size:
                raise InvalidRequest(f"token id {token} is outside the vocabulary (0..{vocab_size - 1})", param)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.backend.token_bytes(token) for token in tokens).decode("utf-8", errors="replace")

    def sampling(
        self,
        request_preset: str | None,
        sent: Mapping[str, float | int | None],
        *,
        seed: int | None,
        logit_bias: Mapping[int, float],
    ) -> SamplingParams:
        if logit_bias:
            self.check_token_ids(list(logit_bias), "logit_bias")
        return self.presets.resolve(
            self.default_preset, request_preset, sent, seed=seed, logit_bias=tuple(sorted(logit_bias.items()))
        )

    # --- generation ----------------------------------------------------------------------------------------

    def budget(self, prompt_length: int, max_tokens: int | None, param: str) -> int:
        """Tokens the request may generate: what it asked for, capped by the room left in the context."""
        context = self.info.context_length
        room = context - prompt_length
        if room < 1:
            reply = max_tokens or 1  # unset: at least the one token a reply needs
            where = "messages" if param == "messages" else "prompt"
            raise ContextOverflow(
                f"This model's maximum context length is {context} tokens. However, you requested "
                f"{prompt_length + reply} tokens ({prompt_length} in the {where}, {reply} in the completion). "
                f"Please reduce the length of the {where} or completion.",
                param=param,
            )
        return room if max_tokens is None else min(max_tokens, room)

    async def generate(
        self, request: GenerationRequest, prompt_param: str = "prompt"
    ) -> AsyncGenerator[EngineEvent, None]:
        """Validate, queue and wait for a free sequence (raising `InvalidRequest`/`Overloaded` before any
        output, so HTTP can still answer with an error status), then return the request's events; events for
        all its choices interleave. Closing the iterator cancels the work."""
        prompt_length = len(request.prompt_tokens)
        if not prompt_length:  # nothing to decode, so no logits to sample the first token from
            raise InvalidRequest(
                "the prompt is empty once tokenized (this model adds no start-of-text token); send some text",
                param=prompt_param,
            )
        if request.grammar is not None:
            self.backend.check_grammar(request.grammar)
        job = BackendJob(
            request_id=request.request_id,
            prompt_tokens=request.prompt_tokens,
            sampling=request.sampling,
            max_new_tokens=self.budget(prompt_length, request.max_tokens, prompt_param),
            n=request.n,
            top_logprobs=request.top_logprobs,
            grammar=request.grammar,
        )
        submitted_at = time.perf_counter()
        stream = self.backend.submit(job)
        try:
            await stream.started()
        except BaseException:
            stream.cancel()
            raise
        return self._events(request, stream, submitted_at)

    async def _events(
        self, request: GenerationRequest, stream: JobStream, submitted_at: float
    ) -> AsyncIterator[EngineEvent]:
        prompt_length = len(request.prompt_tokens)
        choices = [ChoiceText(index, request.stop) for index in range(request.n)]
        last_token_at = [0.0] * request.n
        completion_tokens = 0
        metrics = self.metrics
        metrics.requests_started += 1
        metrics.prompt_tokens += prompt_length
        finished = False
        try:
            async for event in stream:
                choice = choices[event.choice]
                if choice.done:
                    continue
                if isinstance(event, SampledToken):
                    completion_tokens += 1
                    metrics.completion_tokens += 1
                    now = time.perf_counter()
                    if last_token_at[event.choice]:
                        metrics.time_per_output_token.observe(now - last_token_at[event.choice])
                    elif event.choice == 0:
                        metrics.time_to_first_token.observe(now - submitted_at)
                    last_token_at[event.choice] = now
                    delta = choice.add_token(event.token_id, self.backend.token_bytes(event.token_id), self._logprob(event))
                    if delta is not None:
                        yield delta
                    if choice.hit_stop:
                        stream.stop_choice(event.choice)
                        yield ChoiceFinished(event.choice, "stop", by_stop_string=True)
                elif isinstance(event, SequenceFinished):
                    delta = choice.finish()
                    if delta is not None:
                        yield delta
                    reason = "stop" if event.reason == "eog" or choice.hit_stop else "length"
                    yield ChoiceFinished(event.choice, reason, by_stop_string=choice.hit_stop)
                elif isinstance(event, SequenceFailed):
                    log.error("request %s: generation failed: %s", request.request_id, event.message)
                    raise GenerationFailed(f"generation failed: {event.message}")
            finished = True
            yield GenerationFinished(Usage(prompt_tokens=prompt_length, completion_tokens=completion_tokens))
        finally:
            stream.cancel()
            if finished:
                metrics.requests_finished += 1
            else:
                metrics.requests_cancelled += 1

    def _logprob(self, event: SampledToken) -> TokenLogprob | None:
        if event.logprob is None:
            return None
        return TokenLogprob(
            token=self._token_string(event.token_id),
            token_bytes=self.backend.token_bytes(event.token_id),
            logprob=event.logprob,
            top=tuple(
                TopLogprob(self._token_string(token), self.backend.token_bytes(token), logprob)
                for token, logprob in event.top_logprobs
            ),
        )

    def _token_string(self, token_id: int) -> str:
        return self.backend.token_bytes(token_id).decode("utf-8", errors="replace")
