"""EXL2 end to end on an NVIDIA GPU: quantize a small random LLaMA (hidden 256, real SentencePiece tokenizer) with
`codebooga quantize-exl2`, serve it through the real HTTP server and talk to it with the openai client, and compare
greedy tokens with the same model's GGUF on llama.cpp. Skipped (with the reason) where CUDA or exllamav2 is missing.

The first run also JIT-compiles exllamav2's CUDA extension (minutes), hence the long timeout.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from exl2_helpers import SETTINGS_FIELDS, gpu_skip_reason
from server_process import RunningServer, running_server

SKIP_REASON = gpu_skip_reason()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(SKIP_REASON is not None, reason=f"EXL2 GPU tests: {SKIP_REASON}"),
    pytest.mark.timeout(1800),
]

PROMPTS = ["def add(x, y):\n    return", "The server streams tokens back to the", "for i in range(10):\n\t"]


@pytest.fixture(scope="module")
def hf_model(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared random checkpoint with a 2048-token context, so exllamav2's 2048-token calibration rows fit."""
    folder = Path(shutil.copytree(llama_dir, tmp_path_factory.mktemp("gpu") / "TinyLlama"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 2048}))
    return folder


def quantize(hf_model: Path, bits: str, head_bits: str) -> Path:
    import codebooga.server.cli

    output = hf_model.parent / f"TinyLlama-{bits}bpw-exl2"
    if not output.exists():
        code = codebooga.server.cli.main(["quantize-exl2", str(hf_model), str(output), "--bits", bits, "--head-bits", head_bits])
        assert code == 0
    return output


@pytest.fixture(scope="module")
def exl2_425(hf_model: Path) -> Path:
    return quantize(hf_model, "4.25", "6")


@pytest.fixture(scope="module")
def exl2_8(hf_model: Path) -> Path:
    return quantize(hf_model, "8", "8")


@pytest.fixture(scope="module")
def server(exl2_425: Path) -> Iterator[RunningServer]:
    with running_server("--model", str(exl2_425), "--ctx-size", "512", "--parallel", "4", timeout=900) as running:
        yield running


@pytest.fixture()
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api_url, api_key="unused")


def test_sampler_settings_fields_match_the_installed_exllamav2() -> None:
    import dataclasses

    from exllamav2.generator import ExLlamaV2Sampler

    fields = {f.name for f in dataclasses.fields(ExLlamaV2Sampler.Settings) if not f.name.startswith("ngram")}
    assert fields == SETTINGS_FIELDS


def test_quantize_exl2_writes_a_signed_folder(exl2_425: Path, hf_model: Path) -> None:
    config = json.loads((exl2_425 / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "exl2" and config["quantization_config"]["bits"] == 4.25
    assert (exl2_425 / "tokenizer.json").is_file() and (exl2_425 / "measurement.json").is_file()
    assert not (hf_model.parent / "TinyLlama-4.25bpw-exl2.work").exists()
    assert not (hf_model / "tokenizer.json").exists()


def test_health_reports_the_exllamav2_backend(server: RunningServer) -> None:
    health = httpx.get(f"{server.base_url}/health").json()
    assert health["backend"] == "exllamav2" and health["slots_total"] >= 1


def test_chat(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="any", messages=[{"role": "user", "content": "Write a function."}], max_tokens=12, temperature=0
    )
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("length", "stop")
    assert reply.usage.prompt_tokens > 10 and reply.usage.completion_tokens <= 12


def test_streaming_matches_the_non_streamed_answer(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="any", prompt=PROMPTS[0], max_tokens=16, temperature=0).choices[0].text
    chunks = client.completions.create(model="any", prompt=PROMPTS[0], max_tokens=16, temperature=0, stream=True)
    assert "".join(chunk.choices[0].text for chunk in chunks) == whole


def test_stop_strings(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="any", prompt=PROMPTS[1], max_tokens=24, temperature=0).choices[0].text
    stop = whole[len(whole) // 2 : len(whole) // 2 + 2]
    if not stop.strip():
        pytest.skip(f"greedy text has no usable stop string: {whole!r}")
    reply = client.completions.create(model="any", prompt=PROMPTS[1], max_tokens=24, temperature=0, stop=[stop])
    assert reply.choices[0].text == whole[: whole.index(stop)] and reply.choices[0].finish_reason == "stop"


def test_logprobs(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="any", prompt=PROMPTS[0], max_tokens=4, temperature=0, logprobs=3)
    logprobs = reply.choices[0].logprobs
    assert len(logprobs.token_logprobs) == len(logprobs.tokens) > 0
    assert all(value <= 0 for value in logprobs.token_logprobs) and len(logprobs.top_logprobs[0]) == 3


def test_cancelled_streams_free_their_sequences(server: RunningServer, client: openai.OpenAI) -> None:
    for _ in range(3):
        stream = client.completions.create(model="any", prompt=PROMPTS[2], max_tokens=400, temperature=0.8, stream=True)
        for index, _chunk in enumerate(stream):
            if index == 3:
                break
        stream.close()
    deadline = time.monotonic() + 10
    while (health := httpx.get(f"{server.base_url}/health").json())["slots_busy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health["slots_busy"] == 0 and health["queue_depth"] == 0


def test_concurrent_greedy_requests_agree(server: RunningServer) -> None:
    async def ask_all() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.api_url, api_key="unused")
        replies = await asyncio.gather(*(
            client.completions.create(model="any", prompt=PROMPTS[index % 3], max_tokens=24, temperature=0)
            for index in range(12)
        ))  # fmt: skip
        return [reply.choices[0].text for reply in replies]

    texts = asyncio.run(ask_all())
    for index in range(3):
        assert len(set(texts[index::3])) == 1, texts[index::3]


def test_tokens_per_second(server: RunningServer, client: openai.OpenAI, capsys: pytest.CaptureFixture[str]) -> None:
    """Records single-stream decode speed for docs/exl2.md (run with -s to see it)."""
    started = time.monotonic()
    reply = client.completions.create(model="any", prompt=PROMPTS[0], max_tokens=256, temperature=0.8, seed=1)
    rate = reply.usage.completion_tokens / (time.monotonic() - started)
    with capsys.disabled():
        print(f"\nEXL2 4.25bpw tiny model: {reply.usage.completion_tokens} tokens at {rate:.1f} tokens/s (one stream)")
    assert rate > 0


def test_greedy_tokens_match_the_gguf_on_llama_cpp(exl2_8: Path, hf_model: Path, tmp_path: Path) -> None:
    """8-bit EXL2 against an F16 GGUF of the same weights: the first greedy tokens agree."""
    from codebooga.merge.gguf.convert import convert
    from codebooga.merge.gguf.formats import OutType

    gguf = convert(hf_model, tmp_path / "tiny.F16.gguf", OutType.F16, progress=False)
    answers = {}
    for name, model in (("exl2", exl2_8), ("gguf", gguf)):
        with running_server("--model", str(model), "--ctx-size", "512", "--parallel", "1", timeout=900) as running:
            client = openai.OpenAI(base_url=running.api_url, api_key="unused")
            answers[name] = [
                client.completions.create(  # the greedy preset: no repetition penalty, a plain argmax on both
                    model="any", prompt=prompt, max_tokens=4, temperature=0, logprobs=1, extra_body={"preset": "greedy"}
                ).choices[0].logprobs.tokens
                for prompt in PROMPTS
            ]
    assert answers["exl2"] == answers["gguf"]
