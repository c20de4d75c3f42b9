"""Pydantic models of llama-server's /completion and /props: every llama-server shape lives here, nowhere else.

The request reads the fields llama.cpp's clients send (Continue's `llama.cpp` provider, Tabby's
`llama.cpp/completion`) and ignores the rest; `cache_prompt` is accepted (every prompt is evaluated afresh).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from codebooga.server.api.limits import RequestLimits
from codebooga.server.api.llama_sampling import LlamaCppSampling
from codebooga.server.api.schemas import INT32_MAX


class CompletionRequest(LlamaCppSampling):
    """`seed` -1 means a random seed, as llama-server reads it."""

    prompt: str = Field(min_length=1)
    n_predict: int = Field(-1, ge=-2, le=INT32_MAX)
    """-1 (or -2): up to the context."""
    stream: bool = False
    stop: Annotated[list[str], Field(max_length=RequestLimits.MAX_STOP_STRINGS)] = Field(default_factory=list)
    cache_prompt: bool = True
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None


class Timings(BaseModel):
    prompt_n: int
    prompt_ms: float
    prompt_per_token_ms: float
    prompt_per_second: float
    predicted_n: int
    predicted_ms: float
    predicted_per_token_ms: float
    predicted_per_second: float


class CompletionChunk(BaseModel):
    """A streamed piece (`stop: false`), or the last object (`stop: true`) with the counts and timings."""

    content: str
    stop: bool
    index: int = 0
    id_slot: int = 0
    model: str | None = None
    tokens_predicted: int | None = None
    tokens_evaluated: int | None = None
    stop_type: Literal["eos", "word", "limit"] | None = None
    stopped_eos: bool | None = None
    stopped_limit: bool | None = None
    stopped_word: bool | None = None
    truncated: bool | None = None
    tokens_cached: int | None = None
    timings: Timings | None = None

    def wire(self) -> str:
        return self.model_dump_json(exclude_none=True)


class GenerationSettings(BaseModel):
    n_ctx: int
    model: str
    params: dict[str, float | int]


class Props(BaseModel):
    default_generation_settings: GenerationSettings
    n_ctx: int
    total_slots: int
    model_path: str
    model_alias: str
    chat_template: str
    bos_token: str
    eos_token: str
    build_info: str
