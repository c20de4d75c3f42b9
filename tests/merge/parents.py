"""Tiny LLaMA-shaped parent checkpoints, written the ways real parents ship.

Parents differ on purpose: dtype (bfloat16 / float16 / float32), vocabulary (320 vs 321 rows, like Phind
32000 vs WizardCoder 32001) and format (sharded safetensors with an index, sharded `.bin` with an index,
a single `.bin` carrying an old `rotary_emb.inv_freq` buffer). Tensors are stored out of module order so the
merge must derive the order itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import safetensors.torch as safetensors_torch
import torch

HIDDEN = 64
INTERMEDIATE = 160
LAYERS = 4
HEADS = 4
KV_HEADS = 2


@dataclass(frozen=True)
class ModelSpec:
    """How to generate one parent; `overrides` replace tensor shapes, `drop` removes tensors."""

    seed: int
    vocab: int
    dtype: str
    layout: str  # "safetensors-sharded", "safetensors-single", "bin-sharded", "bin-single"
    config_overrides: dict[str, object] = field(default_factory=dict)
    overrides: dict[str, tuple[int, ...]] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()
    inv_freq: bool = False


def module_order_shapes(vocab: int, layers: int = LAYERS) -> dict[str, tuple[int, ...]]:
    """Every tensor of a LLaMA model, in the order `LlamaForCausalLM.state_dict()` yields them."""
    kv = KV_HEADS * HIDDEN // HEADS
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, HIDDEN)}
    for layer in range(layers):
        prefix = f"model.layers.{layer}."
        shapes[prefix + "self_attn.q_proj.weight"] = (HIDDEN, HIDDEN)
        shapes[prefix + "self_attn.k_proj.weight"] = (kv, HIDDEN)
        shapes[prefix + "self_attn.v_proj.weight"] = (kv, HIDDEN)
        shapes[prefix + "self_attn.o_proj.weight"] = (HIDDEN, HIDDEN)
        shapes[prefix + "mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[prefix + "mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[prefix + "mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
        shapes[prefix + "input_layernorm.weight"] = (HIDDEN,)
        shapes[prefix + "post_attention_layernorm.weight"] = (HIDDEN,)
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (vocab, HIDDEN)
    return shapes


def llama_config(vocab: int, dtype: str, **overrides: object) -> dict[str, object]:
    config: dict[str, object] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": vocab,
        "max_position_embeddings": 16384,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-5,
        "torch_dtype": dtype,
    }
    config.update(overrides)
    return config


def generate_state_dict(spec: ModelSpec) -> dict[str, object]:
    """Random tensors with spread-out magnitudes (so float16 rounding is exercised), in module order."""
    generator = torch.Generator().manual_seed(spec.seed)
    layers = int(spec.config_overrides.get("num_hidden_layers", LAYERS))
    state = {}
    for name, shape in module_order_shapes(spec.vocab, layers).items():
        if name in spec.drop:
            continue
        shape = spec.overrides.get(name, shape)
        values = torch.randn(shape, generator=generator) * torch.exp(torch.randn(shape, generator=generator) * 2)
        state[name] = values.to(getattr(torch, spec.dtype))
    return state


def write_model(folder: Path, spec: ModelSpec) -> Path:
    """Write a parent the way the hub ships it: weights in storage order, config, tokenizer files."""
    folder.mkdir(parents=True)
    state = generate_state_dict(spec)
    stored = dict(sorted(state.items(), reverse=True))  # storage order != module order
    if spec.inv_freq:
        stored["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.arange(8, dtype=torch.float32)
    names = list(stored)
    if spec.layout.endswith("sharded"):
        parts = [names[: len(names) // 3], names[len(names) // 3 : 2 * len(names) // 3], names[2 * len(names) // 3 :]]
    else:
        parts = [names]
    is_bin = spec.layout.startswith("bin")
    weight_map = {}
    for number, part in enumerate(parts):
        if is_bin:
            file = f"pytorch_model-{number + 1:05d}-of-{len(parts):05d}.bin" if len(parts) > 1 else "pytorch_model.bin"
            torch.save({name: stored[name] for name in part}, folder / file)
        else:
            file = f"model-{number + 1:05d}-of-{len(parts):05d}.safetensors" if len(parts) > 1 else "model.safetensors"
            safetensors_torch.save_file({name: stored[name] for name in part}, str(folder / file), {"format": "pt"})
        weight_map.update({name: file for name in part})
    if len(parts) > 1:
        index = "pytorch_model.bin.index.json" if is_bin else "model.safetensors.index.json"
        (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = llama_config(spec.vocab, spec.dtype, **spec.config_overrides)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2, "seed": spec.seed}))
    (folder / "tokenizer.model").write_bytes(os.urandom(64) + spec.seed.to_bytes(4, "little"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16384, "seed": spec.seed}))
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    return folder


PHIND_LIKE = ModelSpec(seed=1, vocab=320, dtype="bfloat16", layout="safetensors-sharded")
WIZARD_LIKE = ModelSpec(seed=2, vocab=321, dtype="float16", layout="bin-sharded")
FLOAT32_BIN = ModelSpec(seed=3, vocab=320, dtype="float32", layout="bin-single", inv_freq=True)
FLOAT32_SAFETENSORS = ModelSpec(seed=4, vocab=321, dtype="float32", layout="safetensors-single")
