"""GPU serving benchmark: codebooga's ExLlamaV2 backend (EXL2) and its llama.cpp backend on a CUDA build, one GPU.

No model weights can be downloaded on the GPU machine, so both servers serve the same random LLaMA made on the spot
about SmolLM2-135M's size by default (30 layers, MLP 1536, grouped-query attention with 8 heads of 64 and 2 KV heads;
hidden 512 rather than 576 so every matrix suits EXL2 and K-quant blocks) and the test suite's 608-token SentencePiece
vocabulary: EXL2 4.25 bpw (head 6 bits) made with `codebooga quantize-exl2`, and Q4_K_M GGUF
made with `codebooga convert` + `codebooga quantize`. The quantization times are measured too.

Scenarios (streaming /v1/completions, 128 greedy tokens forced by banning end-of-sequence, rounds alternating
between the two servers, median of --repeats):
  single      one stream: decode tokens/s and time to first token
  concurrent  8 streams at once: aggregate tokens/s and p50/p95 time to first token
Tokens are counted from each response's `usage`, not from chunks. GPU memory is the peak `used_memory` nvidia-smi
reports for each server process while it runs. Results print as Markdown and are written to --out as JSON.

    python bench/gpu_bench.py --work /tmp/gpu-bench --out results.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from bench_client import stream_answer  # noqa: E402
from server_process import RunningServer, running_server  # noqa: E402

CLI = [sys.executable, "-m", "codebooga.server"]
ANSWER_TOKENS = 128
STREAMS = 8
SMOLLM2_BODY = dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=8,
                    num_key_value_heads=2, max_position_embeddings=2048)  # fmt: skip
PROMPTS = [
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "SELECT id, name FROM users WHERE created_at > ",
    "The server streams tokens back to the client and the merge layers blend weights",
]


def timed(command: list[str], log: Path) -> float:
    """Run one codebooga command, its output (progress bars) into `log`; seconds taken."""
    started = time.monotonic()
    with log.open("w") as output:
        if subprocess.run(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT).returncode:
            raise RuntimeError(f"{' '.join(command[2:4])} failed; see {log}")
    return time.monotonic() - started


def make_models(work: Path, bits: str, layers: int) -> tuple[dict[str, Path], dict[str, float]]:
    """The random checkpoint's Q4_K_M GGUF and EXL2 quant (reused when present; a quant whose step fails is left
    out, the failure printed), with the seconds each step took, kept in `build_times.json` beside them so a later
    run that reuses them still reports them."""
    from llama_checkpoints import train_tokenizer, write_checkpoint

    hf, exl2, gguf = work / "bench-llama", work / f"bench-llama-{bits}bpw-exl2", work / "bench-llama.Q4_K_M.gguf"
    record = work / "build_times.json"
    times: dict[str, float] = json.loads(record.read_text()) if record.exists() else {}
    if not hf.exists():
        work.mkdir(parents=True, exist_ok=True)
        staging = work / "bench-llama.tmp"
        staging.mkdir(exist_ok=True)
        write_checkpoint(staging, train_tokenizer(work / "tokenizer.model"), seed=7, dtype="float16",
                         **{**SMOLLM2_BODY, "num_hidden_layers": layers})
        staging.rename(hf)
    f16 = work / "bench-llama.F16.gguf"
    steps = {
        "convert_f16_s": (f16, [*CLI, "convert", str(hf), str(f16), "--outtype", "f16"]),
        "quantize_q4_k_m_s": (gguf, [*CLI, "quantize", str(f16), str(gguf), "--type", "Q4_K_M"]),
        "quantize_exl2_s": (exl2, [*CLI, "quantize-exl2", str(hf), str(exl2), "--bits", bits, "--head-bits", "6"]),
    }
    for name, (output, command) in steps.items():
        if not output.exists():
            try:
                times[name] = timed(command, work / f"{command[3]}.log")
            except RuntimeError as error:
                print(error, flush=True)
    record.write_text(json.dumps(times))
    return {label: path for label, path in (("gguf", gguf), ("exl2", exl2)) if path.exists()}, times


class GpuMemory:
    """Peak GPU memory per process id, sampled from nvidia-smi every half second."""

    def __init__(self) -> None:
        self.peak_mib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
            try:
                output = subprocess.run(query, capture_output=True, text=True).stdout
            except FileNotFoundError:  # no NVIDIA driver here: nothing to sample
                return
            for line in output.splitlines():
                pid, used = (field.strip() for field in line.split(","))
                if pid.isdigit() and used.isdigit():
                    self.peak_mib[int(pid)] = max(self.peak_mib.get(int(pid), 0), int(used))

    @contextmanager
    def sampling(self) -> Iterator[GpuMemory]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


async def stream_completion(client: httpx.AsyncClient, prompt: str, eos: int) -> dict[str, float]:
    """One streamed greedy completion: time to first token, decode tokens/s and tokens, from `usage`."""
    body = {"model": "bench", "prompt": prompt, "max_tokens": ANSWER_TOKENS, "temperature": 0,
            "logit_bias": {str(eos): -100}}  # fmt: skip
    answer = await stream_answer(client, "/v1/completions", body)
    if not answer.text or answer.counted_from != "usage" or answer.completion_tokens != ANSWER_TOKENS:
        raise RuntimeError(f"expected {ANSWER_TOKENS} streamed tokens, usage says {answer.completion_tokens}")
    return {"ttft_s": answer.ttft, "tokens": answer.completion_tokens, "decode_tok_s": answer.decode_rate}


async def concurrent_round(client: httpx.AsyncClient, round_index: int, eos: int) -> dict[str, float]:
    started = time.perf_counter()
    results = await asyncio.gather(*(
        stream_completion(client, f"{PROMPTS[i % len(PROMPTS)]}# {round_index}-{i}\n", eos) for i in range(STREAMS)
    ))  # fmt: skip
    wall = time.perf_counter() - started
    ttfts = sorted(result["ttft_s"] for result in results)
    return {"tok_s": sum(result["tokens"] for result in results) / wall, "ttft_p50_s": statistics.median(ttfts),
            "ttft_p95_s": ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))]}  # fmt: skip


async def measure(servers: dict[str, RunningServer], repeats: int, eos: int) -> dict[str, dict[str, float]]:
    """Rounds alternate between the servers, rotating who goes first."""
    names = list(servers)
    clients = {name: httpx.AsyncClient(base_url=server.base_url, timeout=600) for name, server in servers.items()}
    try:
        for client in clients.values():
            await stream_completion(client, PROMPTS[0], eos)
        singles: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for round_index in range(repeats):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                singles[name].append(await stream_completion(clients[name], PROMPTS[round_index % len(PROMPTS)], eos))
            for name in order:
                rounds[name].append(await concurrent_round(clients[name], round_index, eos))
        return {
            name: {
                "single_tok_s": statistics.median(s["decode_tok_s"] for s in singles[name]),
                "single_ttft_s": statistics.median(s["ttft_s"] for s in singles[name]),
                "concurrent_tok_s": statistics.median(r["tok_s"] for r in rounds[name]),
                "concurrent_ttft_p50_s": statistics.median(r["ttft_p50_s"] for r in rounds[name]),
                "concurrent_ttft_p95_s": statistics.median(r["ttft_p95_s"] for r in rounds[name]),
            }
            for name in names
        }
    finally:
        for client in clients.values():
            await client.aclose()


def markdown(results: dict[str, dict[str, float]]) -> str:
    rows = ["| server | 1 stream tok/s | 1 stream TTFT s | 8 streams tok/s | 8 streams TTFT p50 / p95 s | GPU MiB |",
            "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in results.items():
        rows.append(f"| {name} | {r['single_tok_s']:.1f} | {r['single_ttft_s']:.3f} | {r['concurrent_tok_s']:.1f} | "
                    f"{r['concurrent_ttft_p50_s']:.3f} / {r['concurrent_ttft_p95_s']:.3f} | {r.get('gpu_mib', 0)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the generated model and its quants")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--bits", default="4.25")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=SMOLLM2_BODY["num_hidden_layers"])
    parser.add_argument("--skip-gguf", action="store_true", help="EXL2 only (llama.cpp has no CUDA build here)")
    parser.add_argument("--prepare-only", action="store_true", help="make the model and its quants, measure nothing")
    args = parser.parse_args()

    models, build_times = make_models(args.work, args.bits, args.layers)
    print(json.dumps(build_times), flush=True)
    if args.prepare_only:
        return
    eos = json.loads((args.work / "bench-llama" / "config.json").read_text())["eos_token_id"]
    common = ["--ctx-size", "1024", "--parallel", str(STREAMS), "--log-level", "warning"]
    commands = {}
    if "exl2" in models:
        commands[f"exllamav2 (EXL2 {args.bits} bpw)"] = ["--model", str(models["exl2"]), *common]
    if "gguf" in models and not args.skip_gguf:
        commands["llama.cpp CUDA (Q4_K_M, -ngl 99)"] = ["--model", str(models["gguf"]), "--n-gpu-layers", "99", *common]
    if not commands:
        raise SystemExit("no model to serve: see the errors above")
    with ExitStack() as stack, GpuMemory().sampling() as memory:
        servers = {name: stack.enter_context(running_server(*command, timeout=600)) for name, command in commands.items()}
        results = asyncio.run(measure(servers, args.repeats, eos))
        time.sleep(1)  # one more nvidia-smi sample after the last round
        for name, server in servers.items():
            results[name]["gpu_mib"] = memory.peak_mib.get(server.process.pid, 0)
    record = {"build": build_times, "results": results, "answer_tokens": ANSWER_TOKENS, "streams": STREAMS,
              "model_shape": {**SMOLLM2_BODY, "num_hidden_layers": args.layers}, "when": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=2))
    print(markdown(results), flush=True)


if __name__ == "__main__":
    main()
