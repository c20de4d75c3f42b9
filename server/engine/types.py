"""Value types shared by the engine, its backends and its callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """Fully resolved sampling settings for one request: every field is set, nothing left to a backend default.

    Backends disagree on defaults (ExLlamaV2 samples at temperature 0.8 unless told otherwise), so the engine
    always resolves presets and request fields into this complete record first.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    penalty_last_n: int = 64
    seed: int | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def has_penalties(self) -> bool:
        return self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0


@dataclass(frozen=True)
class Grammar:
    """A GBNF grammar every generated choice must follow (its rule `root`).

    With a `trigger` the grammar is lazy: text is free until it contains the trigger, and from the trigger on
    (the trigger included) it must follow `root`. `param` names the request field that asked for it, for
    errors from backends that cannot constrain generation.
    """

    gbnf: str
    param: str
    trigger: str | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """What the caller wants generated. `top_logprobs` is None for no logprobs, 0 for the chosen token's only."""

    request_id: str
    prompt_tokens: tuple[int, ...]
    sampling: SamplingParams
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    top_logprobs: int | None = None
    grammar: Grammar | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What callers need to know about the loaded model."""

    model_id: str
    context_length: int
    vocab_size: int
    chat_template: str | None
    bos_token: str
    eos_token: str
    backend: str
    longest_token_bytes: int
    """The most text one token stands for, special tokens' markup included: a text of more characters than
    `context_length` times this can never fit the context, whatever it tokenizes to."""
    architecture: str = "llama"
    """The model family as GGUF names it (`general.architecture`); Ollama clients read `<arch>.context_length`."""
    parameter_count: int = 0
    """Weights in the model, 0 where the backend does not say."""
    quantization: str = ""
    """How the weights are stored (`Q4_K_M`, `F16`), empty where the backend does not say."""


# --- backend level: token ids -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendJob:
    """One generation as a backend sees it: `max_new_tokens` is already capped to the room in the context."""

    request_id: str
    prompt_tokens: tuple[int, ...]
    sampling: SamplingParams
    max_new_tokens: int
    n: int = 1
    top_logprobs: int | None = None
    grammar: Grammar | None = None


@dataclass(frozen=True)
class SampledToken:
    """A token a backend sampled for one choice, with its log-probability under the model when asked for."""

    choice: int
    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class SequenceFinished:
    """A backend ended a choice: `eog` for an end-of-generation token, `length` for the token budget."""

    choice: int
    reason: Literal["eog", "length"]


@dataclass(frozen=True)
class SequenceFailed:
    """A backend could not continue a choice (e.g. the KV cache is exhausted)."""

    choice: int
    message: str


BackendEvent = SampledToken | SequenceFinished | SequenceFailed


# --- engine level: text ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopLogprob:
    token: str
    token_bytes: bytes
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its logprob and the most likely alternatives at its position."""

    token: str
    token_bytes: bytes
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    """New text for one choice. `logprobs` covers exactly the tokens whose text this delta completes."""

    choice: int
    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class ChoiceFinished:
    choice: int
    finish_reason: FinishReason
    by_stop_string: bool = False
    """A "stop" that came from a stop string rather than the end-of-generation token."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class GenerationFinished:
    usage: Usage


EngineEvent = TextDelta | ChoiceFinished | GenerationFinished


@dataclass
class BackendStats:
    """A snapshot of backend load for /health and /metrics."""

    slots_total: int
    slots_busy: int
    queue_depth: int
    extra: dict[str, float] = field(default_factory=dict)
