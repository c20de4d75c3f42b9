"""Pydantic models of Ollama's API: every request and response shape of /api/* lives here, nowhere else.

Requests ignore unknown fields and unknown `options` (Ollama's own long list: `num_ctx`, `num_gpu`, `mirostat`,
...), and validate the options this server applies strictly, so a bad value is a 400 rather than a surprise.
Responses leave out what they do not carry, as Ollama does (`tool_calls` only on answers that made calls,
the counters only on the final `done` object).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codebooga.server.api.limits import RequestLimits
from codebooga.server.api.llama_sampling import LlamaCppSampling
from codebooga.server.api.schemas import INT32_MAX, Tool

# --- requests -----------------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class Options(LlamaCppSampling):
    """The sampling options this server applies; `num_predict` -1 (or -2) means up to the context."""

    num_predict: int | None = Field(None, ge=-2, le=INT32_MAX)
    stop: str | Annotated[list[str], Field(max_length=RequestLimits.MAX_STOP_STRINGS)] | None = None


Format = Literal["", "json"] | dict[str, Any]
"""`json` for any JSON, or a JSON schema the answer must satisfy; empty for free text."""


class ToolCallFunction(_Request):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class MessageToolCall(_Request):
    """A call in an earlier assistant turn, sent back with the history (Ollama's calls carry no id)."""

    function: ToolCallFunction


class Message(_Request):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_name: str | None = None
    thinking: str | None = None


class _GenerationRequest(_Request):
    model: str = ""
    format: Format | None = None
    options: Options | None = None
    stream: bool = True
    keep_alive: str | int | float | None = None
    """Accepted and ignored: the model stays loaded for as long as the server runs."""
    think: bool | str | None = None


class ChatRequest(_GenerationRequest):
    messages: Annotated[list[Message], Field(max_length=RequestLimits.MAX_MESSAGES)] = Field(default_factory=list)
    tools: Annotated[list[Tool], Field(max_length=RequestLimits.MAX_TOOLS)] | None = None
    tool_choice: Literal["auto", "none", "required"] = "auto"
    """codebooga's extension (Ollama has none, so the model always chooses): `required` forces a call."""


class GenerateRequest(_GenerationRequest):
    prompt: str = ""
    system: str | None = None
    suffix: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None


class ShowRequest(_Request):
    model: str | None = None
    name: str | None = None  # the field's name before Ollama 0.4


# --- responses ----------------------------------------------------------------------------------------------


class _Response(BaseModel):
    def wire(self) -> dict[str, Any]:
        """The JSON Ollama sends: fields this response does not carry are left out."""
        return self.model_dump(exclude_none=True)


class Version(_Response):
    version: str


class ModelDetails(_Response):
    parent_model: str = ""
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class ModelEntry(_Response):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class LoadedModel(ModelEntry):
    expires_at: str
    size_vram: int


class ModelList(_Response):
    models: list[ModelEntry]


class LoadedModelList(_Response):
    models: list[LoadedModel]


class ShowResponse(_Response):
    modelfile: str
    parameters: str
    template: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class CalledFunction(_Response):
    index: int
    name: str
    arguments: dict[str, Any]


class ToolCall(_Response):
    function: CalledFunction


class AssistantMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str = ""
    tool_calls: list[ToolCall] | None = None


class _Chunk(_Response):
    """One NDJSON line; the last (`done: true`) carries why it ended and the counters, durations in ns."""

    model: str
    created_at: str
    done: bool = False
    done_reason: Literal["stop", "length", "load"] | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class ChatChunk(_Chunk):
    message: AssistantMessage


class GenerateChunk(_Chunk):
    response: str = ""
