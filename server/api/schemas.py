"""Pydantic models mirroring the OpenAI API: every request and response shape lives here, nowhere else.

Requests ignore unknown fields (clients send vendor extensions) and accept codebooga's sampling extensions
(`preset`, `top_k`, `min_p`, `typical_p`, `repetition_penalty`) at the top level, as vLLM and llama-server do.
They are validated strictly, as OpenAI validates them: no type coercion (`"2"` is not a number, `1` is not a
boolean), finite numbers only, and integers within what the backends take. Their JSON schema is published as
the OpenAPI document, so a constraint lives in the field (where the schema shows it) and a validator only
words its error message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from codebooga.server.api.limits import RequestLimits

FinishReason = Literal["stop", "length"]
ChatFinishReason = Literal["stop", "length", "tool_calls"]

INT32_MAX = 2**31 - 1  # llama.cpp takes counts (top_k) as C ints
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # OpenAI's seed is an int64
_TOKEN_ID_KEY = re.compile(r"[0-9]{1,10}")

# --- requests -----------------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class StreamOptions(_Request):
    include_usage: bool = False


class SamplingRequest(_Request):
    """Fields both completion endpoints share."""

    model: str | None = None
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | Annotated[list[str], Field(max_length=RequestLimits.MAX_STOP_STRINGS)] | None = None
    max_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    logit_bias: (
        Annotated[
            dict[
                Annotated[str, Field(pattern=f"^{_TOKEN_ID_KEY.pattern}$")],
                Annotated[float, Field(ge=-100.0, le=100.0)],
            ],
            Field(max_length=RequestLimits.MAX_LOGIT_BIAS, json_schema_extra={"additionalProperties": False}),
        ]
        | None
    ) = None
    temperature: float | None = Field(None, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    user: str | None = None
    preset: str | None = None
    top_k: int | None = Field(None, ge=0, le=INT32_MAX)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    typical_p: float | None = Field(None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, gt=0.0)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_strings(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list) or not all(isinstance(stop, str) for stop in value):
            raise ValueError("stop must be a string or a list of strings")
        if len(value) > RequestLimits.MAX_STOP_STRINGS:
            raise ValueError(
                f"at most {RequestLimits.MAX_STOP_STRINGS} stop strings are allowed, got {len(value)}; "
                "keep the ones that end an answer"
            )
        return value

    @field_validator("logit_bias", mode="before")
    @classmethod
    def _bias_entries(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if len(value) > RequestLimits.MAX_LOGIT_BIAS:
            raise ValueError(
                f"at most {RequestLimits.MAX_LOGIT_BIAS} logit_bias entries are allowed, got {len(value)}; "
                "bias fewer tokens"
            )
        for token, bias in value.items():
            if not _TOKEN_ID_KEY.fullmatch(token):
                raise ValueError(f"keys are token ids written as strings, like \"1234\"; got {token!r}")
            if isinstance(bias, (int, float)) and not isinstance(bias, bool) and not -100.0 <= bias <= 100.0:
                raise ValueError(f"bias for token {token} must be between -100 and 100, got {bias}")
        return value

    def token_bias(self) -> dict[int, float]:
        """`logit_bias` with its keys as token ids (JSON object keys are strings)."""
        return {int(token): bias for token, bias in (self.logit_bias or {}).items()}

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(stop for stop in stops if stop)

    def sampling_fields(self) -> dict[str, float | int | None]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "typical_p": self.typical_p,
            "repetition_penalty": self.repetition_penalty,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
        }

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


_FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


class JsonSchemaFormat(_Request):
    name: str = Field(pattern=_FUNCTION_NAME)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(_Request):
    type: Literal["text"]


class ResponseFormatJsonObject(_Request):
    type: Literal["json_object"]


class ResponseFormatJsonSchema(_Request):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema, Field(discriminator="type")
]


PromptInput = (
    str
    | Annotated[list[str], Field(min_length=1)]
    | Annotated[list[int], Field(min_length=1)]
    | Annotated[list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1)]
)


class CompletionRequest(SamplingRequest):
    model_config = ConfigDict(
        json_schema_extra={  # prompt logprobs are not computed, so echo cannot come with logprobs
            "if": {"properties": {"echo": {"const": True}}, "required": ["echo"]},
            "then": {"properties": {"logprobs": {"type": "null"}}},
        }
    )

    prompt: PromptInput
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    suffix: str | None = Field(None, max_length=0)
    response_format: ResponseFormat | None = None
    best_of: int | None = Field(None, ge=1, le=1)

    @field_validator("best_of", mode="before")
    @classmethod
    def _one_candidate(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            raise ValueError("best_of is not supported: every sampled choice is returned; send n instead")
        return value

    @property
    def prompt_count(self) -> int:
        """One prompt for a string or a list of token ids, else one per item."""
        if isinstance(self.prompt, str) or isinstance(self.prompt[0], int):
            return 1
        return len(self.prompt)

    @field_validator("suffix", mode="before")
    @classmethod
    def _no_infilling(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            raise ValueError(
                "fill-in-the-middle is not supported: this model family was not trained for infilling; leave it out"
            )
        return value

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value:
            if all(isinstance(item, str) for item in value):
                return value
            if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
                return value
            if all(
                isinstance(item, list)
                and item
                and all(isinstance(token, int) and not isinstance(token, bool) for token in item)
                for item in value
            ):
                return value
        raise ValueError(
            "prompt must be a string, a non-empty list of strings, a list of token ids, "
            "or a list of non-empty lists of token ids"
        )


class ContentPart(_Request):
    type: Literal["text"]
    text: str


class FunctionCall(_Request):
    name: str
    arguments: str
    """The arguments as a JSON object written out as text, as the model produced them."""


class MessageToolCall(_Request):
    """A tool call in an earlier assistant turn, sent back by the client with the history."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list) or not all(isinstance(part, dict) for part in value):
            raise ValueError("content must be a string or a list of content parts")
        for part in value:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError(
                    f"content parts of type '{part.get('type')}' are not supported; this model reads text only"
                )
        return value

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionDefinition(_Request):
    name: str = Field(pattern=_FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Request):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Request):
    name: str


class NamedToolChoice(_Request):
    type: Literal["function"]
    function: NamedFunction


_UNSUPPORTED_CHAT_FIELDS = {
    "functions": "functions is the deprecated form of tools; send tools instead",
    "function_call": "function_call is the deprecated form of tool_choice; send tool_choice instead",
    "audio": "audio output is not supported: this model writes text only; leave audio out",
    "modalities": "only the text modality is supported: this model writes text only",
    "web_search_options": "web search is not supported by this server; leave web_search_options out",
}


class ChatCompletionRequest(SamplingRequest):
    model_config = ConfigDict(
        json_schema_extra={  # top_logprobs needs logprobs: true (checked in api/chat.py)
            "if": {"properties": {"top_logprobs": {"type": "integer"}}, "required": ["top_logprobs"]},
            "then": {"properties": {"logprobs": {"const": True}}, "required": ["logprobs"]},
        }
    )

    messages: list[ChatMessage] = Field(min_length=1, max_length=RequestLimits.MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: Annotated[list[Tool], Field(max_length=RequestLimits.MAX_TOOLS)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    # Fields that would change the answer and that this server cannot honour: declared so that sending them is
    # a 400 naming the field rather than an answer that silently lacks what was asked for.
    functions: None = None
    function_call: None = None
    audio: None = None
    modalities: list[Literal["text"]] | None = None
    web_search_options: None = None

    @field_validator("functions", "function_call", "audio", "modalities", "web_search_options", mode="before")
    @classmethod
    def _unsupported(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or (info.field_name == "modalities" and value == ["text"]):
            return value
        raise ValueError(_UNSUPPORTED_CHAT_FIELDS[info.field_name])

    @field_validator("messages", mode="before")
    @classmethod
    def _message_count(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > RequestLimits.MAX_MESSAGES:
            raise ValueError(
                f"at most {RequestLimits.MAX_MESSAGES} messages are allowed, got {len(value)}; "
                "drop or summarize the oldest turns"
            )
        return value

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class TokenizeRequest(_Request):
    content: str
    add_special: bool = True


class DetokenizeRequest(_Request):
    tokens: list[int]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    CompletionRequest,
    ChatCompletionRequest,
    TokenizeRequest,
    DetokenizeRequest,
)
"""Every request body the API reads; the OpenAPI document publishes their schemas."""


# --- responses ----------------------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: Usage | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChatLogprobs(BaseModel):
    content: list[ChatTokenLogprob] | None = None
    refusal: list[ChatTokenLogprob] | None = None


class ResponseFunctionCall(BaseModel):
    name: str
    arguments: str


class ResponseToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: ResponseFunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ResponseToolCall] | None = None

    @model_serializer(mode="wrap")
    def _omit_no_tool_calls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`tool_calls` appears only on answers that made calls, as OpenAI sends it."""
        data = handler(self)
        if data.get("tool_calls") is None:
            data.pop("tool_calls", None)
        return data


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: ChatFinishReason | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChoice]
    usage: Usage


class FunctionCallDelta(BaseModel):
    """Only the fields a chunk carries are sent: the name in the call's first chunk, argument text after."""

    name: str | None = None
    arguments: str | None = None

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ToolCallChunk(BaseModel):
    """A streamed tool call fragment: `index` says which call; `id` and `type` come only with its first chunk."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ChatDelta(BaseModel):
    """Only the fields a chunk carries are sent: the closing chunk's delta is `{}`, as OpenAI sends it."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallChunk] | None = None

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: ChatFinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    """A model as OpenAI lists it, plus its context per request under the two names clients read (OpenRouter's
    `context_length`, vLLM's `max_model_len`): agents size and compact their history by it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "codebooga"
    context_length: int
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class PresetCard(BaseModel):
    """A sampling preset (`presets/*.yaml`): what a request's `preset` field can name, and the fields it sets."""

    name: str
    description: str
    sampling: dict[str, float]
    default: bool = Field(description="The server's preset (--preset): fields a request leaves out come from it.")


class PresetList(BaseModel):
    """GET /v1/presets (a codebooga extension): the playground's preset picker and other clients read it."""

    object: Literal["list"] = "list"
    default: str
    data: list[PresetCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HealthStatus(BaseModel):
    """GET /health: `loading` (503) until the model is ready, then `ok` (200) with the load and the counters."""

    model_config = ConfigDict(extra="allow")  # the backend's own counters (tokens_per_second, ...)

    status: Literal["ok", "loading"]
    model: str | None = None
    backend: str | None = None
    context_length: int | None = None
    chat_template: str | None = None
    preset: str | None = None
    slots_total: int | None = None
    slots_busy: int | None = None
    queue_depth: int | None = None


class TokenizeResponse(BaseModel):
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    content: str
