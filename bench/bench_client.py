"""One streamed answer (chat or plain completion) as the benchmarks in this folder measure it, against any
OpenAI-compatible server, and the percentile they summarize its times with."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class StreamedAnswer:
    ttft: float
    """Seconds from sending the request to the first text."""
    total: float
    """Seconds from sending the request to the end of the stream."""
    completion_tokens: int
    """From the stream's `usage`: the tokens the server generated, not the chunks it happened to send. A server
    that sends no usage in streams (llama-cpp-python's) gets its text chunks counted instead, and says so in
    `counted_from`: it sends one chunk per token."""
    prompt_tokens: int | None
    counted_from: str
    """"usage" or "chunks"."""
    text: str
    timings: dict = field(default_factory=dict)
    """llama-server's `timings` record (`prompt_n`, `cache_n`, ...), where the server sends one."""

    @property
    def decode_rate(self) -> float:
        """Tokens per second after the first."""
        return (self.completion_tokens - 1) / (self.total - self.ttft) if self.total > self.ttft else 0.0


async def stream_answer(client: httpx.AsyncClient, route: str, body: dict) -> StreamedAnswer:
    """POST `body` to `route` (/v1/chat/completions or /v1/completions) as a stream, asking for `usage` at its
    end; text is a chat chunk's `delta.content` or a completion chunk's `text`."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first = None
    text: list[str] = []
    chunks = 0
    usage: dict = {}
    timings: dict = {}
    async with client.stream("POST", route, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
            for choice in chunk.get("choices", []):
                content = choice.get("text") or (choice.get("delta") or {}).get("content")
                if content:
                    first = first if first is not None else time.perf_counter() - started
                    text.append(content)
                    chunks += 1
    total = time.perf_counter() - started
    ttft = first if first is not None else total
    if usage:
        return StreamedAnswer(ttft, total, usage["completion_tokens"], usage["prompt_tokens"], "usage", "".join(text), timings)
    return StreamedAnswer(ttft, total, chunks, None, "chunks", "".join(text), timings)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 for p50): a value that was measured, never interpolated."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
