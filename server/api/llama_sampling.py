"""The sampling fields as llama.cpp names them, which llama-server's /completion and Ollama's `options` share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from codebooga.server.api.schemas import INT32_MAX, INT64_MAX, INT64_MIN


class LlamaCppSampling(BaseModel):
    """Validated strictly, as the OpenAI requests are, so a bad value is a 400 rather than a surprise; unknown
    fields are ignored (both APIs have long lists of options this server does not apply)."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    temperature: float | None = Field(None, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=INT32_MAX)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    typical_p: float | None = Field(None, gt=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0)
    repeat_last_n: int | None = Field(None, ge=-1, le=INT32_MAX)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
