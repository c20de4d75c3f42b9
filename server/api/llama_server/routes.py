"""llama-server's routes: parse, delegate (completion.py), return; errors in the OpenAI shape the rest of the
API answers, which llama-server's own resembles. Left out of /openapi.json, which describes the OpenAI API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from codebooga.server.api.body import read_body
from codebooga.server.api.llama_server.completion import create_completion
from codebooga.server.api.llama_server.schemas import CompletionRequest, GenerationSettings, Props
from codebooga.server.api.routes import engine_of
from codebooga.server.engine.engine import Engine

router = APIRouter(include_in_schema=False)


@router.post("/completion")
async def completion(request: Request, engine: Engine = Depends(engine_of)) -> Response:
    body = await read_body(request, CompletionRequest)
    return await create_completion(engine, body, request, request.app.state.settings.sse_ping)


@router.get("/props")
async def props(request: Request, engine: Engine = Depends(engine_of)) -> Props:
    """What llama.cpp clients read before they send prompts: the context, the template, the default sampling."""
    info = engine.info
    defaults = engine.sampling(None, {}, seed=None, logit_bias={})
    model_path = str(request.app.state.settings.model)
    return Props(
        default_generation_settings=GenerationSettings(
            n_ctx=info.context_length,
            model=model_path,
            params={
                "n_predict": -1,
                "seed": -1,
                "temperature": defaults.temperature,
                "top_k": defaults.top_k,
                "top_p": defaults.top_p,
                "min_p": defaults.min_p,
                "typical_p": defaults.typical_p,
                "repeat_penalty": defaults.repetition_penalty,
                "repeat_last_n": defaults.penalty_last_n,
                "presence_penalty": defaults.presence_penalty,
                "frequency_penalty": defaults.frequency_penalty,
            },
        ),
        n_ctx=info.context_length,
        total_slots=engine.stats().slots_total,
        model_path=model_path,
        model_alias=info.model_id,
        chat_template=engine.chat_template.source,
        bos_token=info.bos_token,
        eos_token=info.eos_token,
        build_info=f"codebooga {request.app.version}",
    )
