"""Benchmark `codebooga merge` on a ~1 GB pair of LLaMA-shaped parents.

Generates two checkpoints with realistic shapes (hidden 2048, intermediate 5632, 8 layers, vocab 32000 vs
32001; model 1 float16, model 2 bfloat16, both sharded safetensors), merges them with the shipped seed recipe
(`merge/recipes/codebooga-34b-v0.1.yaml`, model paths replaced) in a subprocess, and reports:

* wall time of the merge against a plain-I/O baseline measured in the same run: read every byte of both
  inputs, then write as many bytes as the merged output holds and fsync them, as the merge does before its
  final rename (goal: merge ≤ 2× baseline);
* the merge process's peak anonymous memory (RssAnon, sampled every 5 ms from /proc; goal ≤ 600 MiB).
  File-backed pages of memory-mapped inputs are page cache, not RssAnon, and do not count.

Both measurements read inputs from a warm page cache (the files were just written) and start after `sync`, so
they see the same disk state; baseline and merge alternate and the best of each is reported. The merge time
is the whole CLI process, interpreter start and imports included. Run: `python bench/merge_bench.py [--workdir DIR] [--keep]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from codebooga.merge.dtypes import narrow_from_float32
from codebooga.merge.writer import OutputTensor, ShardedWriter

REPO = Path(__file__).resolve().parents[1]

HIDDEN, INTERMEDIATE, LAYERS, HEADS = 2048, 5632, 8, 16
GOAL_RATIO, GOAL_RSS_MIB = 2.0, 600


def llama_shapes(vocab: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, HIDDEN)}
    for layer in range(LAYERS):
        prefix = f"model.layers.{layer}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[f"{prefix}self_attn.{name}.weight"] = (HIDDEN, HIDDEN)
        shapes[f"{prefix}mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[f"{prefix}mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[f"{prefix}mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
        shapes[f"{prefix}input_layernorm.weight"] = (HIDDEN,)
        shapes[f"{prefix}post_attention_layernorm.weight"] = (HIDDEN,)
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (vocab, HIDDEN)
    return shapes


def generate_parent(folder: Path, vocab: int, dtype: str, seed: int) -> None:
    """Write a random parent chunk by chunk (constant memory), with a config like CodeLlama's."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    shapes = llama_shapes(vocab)
    tensors = [OutputTensor(name, shape, dtype) for name, shape in shapes.items()]
    with ShardedWriter(folder, tensors, 400 * 2**20) as writer:
        for tensor in tensors:
            rows = tensor.shape[0]
            row_size = int(np.prod(tensor.shape[1:], dtype=np.int64))
            step = max(1, 4_000_000 // row_size)
            for start in range(0, rows, step):
                count = min(step, rows - start)
                values = rng.standard_normal((count, *tensor.shape[1:]), dtype=np.float32)
                values *= 0.02
                writer.write(tensor.name, narrow_from_float32(values, dtype))
        writer.finish()
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS, "vocab_size": vocab, "rope_theta": 1000000.0, "torch_dtype": dtype,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def folder_bytes(folder: Path) -> int:
    """Bytes of tensor data in a sharded safetensors folder (from its index)."""
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return int(index["metadata"]["total_size"])


def plain_io(inputs: list[Path], write_bytes: int, scratch: Path) -> float:
    """Seconds to read every weight byte of `inputs` and write `write_bytes` bytes to a new file."""
    buffer = bytearray(16 * 2**20)
    view = memoryview(buffer)
    started = time.perf_counter()
    for folder in inputs:
        for path in sorted(folder.glob("*.safetensors")):
            with path.open("rb", buffering=0) as handle:
                while handle.readinto(buffer):
                    pass
    with (scratch / "baseline.bin").open("wb", buffering=0) as handle:
        remaining = write_bytes
        while remaining:
            remaining -= handle.write(view[: min(remaining, len(buffer))])
        os.fsync(handle.fileno())  # the merge makes its output durable before renaming it into place
    elapsed = time.perf_counter() - started
    (scratch / "baseline.bin").unlink()
    return elapsed


def rss_anon_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def timed_merge(recipe: Path) -> tuple[float, int, float]:
    """Run the CLI merge in a subprocess; returns (wall seconds, peak RssAnon in KiB, CPU seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "codebooga.server", "merge", str(recipe)], cwd=REPO)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while process.returncode is None:
            peak = max(peak, rss_anon_kib(process.pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"merge failed with exit code {process.returncode}")
    return elapsed, peak, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where to generate the parents (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is reported")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="merge-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        model1, model2, output = workdir / "parent-f16", workdir / "parent-bf16", workdir / "merged"
        if not (model1 / "config.json").exists():
            print("generating parents ...", flush=True)
            shutil.rmtree(model1, ignore_errors=True)
            shutil.rmtree(model2, ignore_errors=True)
            generate_parent(model1, 32000, "float16", seed=1)
            generate_parent(model2, 32001, "bfloat16", seed=2)
        recipe = yaml.safe_load((REPO / "merge" / "recipes" / "codebooga-34b-v0.1.yaml").read_text())
        recipe.update(model_path1=str(model1), model_path2=str(model2), output_model_path=str(output))
        recipe_path = workdir / "recipe.yaml"
        recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))

        input_bytes = folder_bytes(model1) + folder_bytes(model2)
        output_bytes = folder_bytes(model1)  # float16 output with model 1's vocabulary: same size as model 1
        baselines, runs = [], []
        for _ in range(args.repeat):  # interleaved, each from a flushed page cache state, so both see the same disk
            shutil.rmtree(output, ignore_errors=True)
            os.sync()
            baselines.append(plain_io([model1, model2], output_bytes, workdir))
            os.sync()
            runs.append(timed_merge(recipe_path))
            seconds, peak, cpu = runs[-1]
            print(f"plain I/O {baselines[-1]:.2f} s | merge {seconds:.2f} s ({cpu:.2f} s CPU), peak RssAnon {peak / 1024:.0f} MiB")
        baseline = min(baselines)
        merge_seconds = min(seconds for seconds, _, _ in runs)
        peak_mib = max(peak for _, peak, _ in runs) / 1024
        assert folder_bytes(output) == output_bytes, "merged output has an unexpected size"

        ratio = merge_seconds / baseline
        print(f"inputs: {input_bytes / 2**30:.2f} GiB read, output: {output_bytes / 2**30:.2f} GiB written")
        print(f"plain I/O baseline: {baseline:.2f} s")
        print(f"merge wall time:    {merge_seconds:.2f} s  ({ratio:.2f}x baseline, goal <= {GOAL_RATIO:.0f}x)")
        print(f"merge peak RssAnon: {peak_mib:.0f} MiB  (goal <= {GOAL_RSS_MIB} MiB)")
        ok = ratio <= GOAL_RATIO and peak_mib <= GOAL_RSS_MIB
        print("goals met" if ok else "GOALS MISSED")
        return 0 if ok else 1
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
