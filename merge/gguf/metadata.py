"""LLaMA hyperparameters from an HF `config.json`, written as the GGUF keys llama.cpp reads.

Kept apart from tensor conversion because it is the part that varies between transformers versions (transformers 5
moved `rope_theta` under `rope_parameters`), and a wrong value here gives a file that loads but generates garbage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gguf

from .errors import GGUFError

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
DEFAULT_ROPE_THETA = 10000.0


@dataclass(frozen=True)
class LlamaHParams:
    """The subset of an HF LLaMA config that the GGUF header and the q/k permutation need."""

    context_length: int
    embedding_length: int
    block_count: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_linear_factor: float | None
    vocab_size: int
    tie_word_embeddings: bool


def _rope_settings(config: dict[str, Any], path: str) -> tuple[float, float | None]:
    """rope_theta and an optional linear scaling factor, from either config style.

    Older configs carry `rope_theta` and `rope_scaling` at the top level; transformers 5 writes one
    `rope_parameters` dict holding `rope_theta` and `rope_type`.
    """
    parameters = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or parameters
    theta = parameters.get("rope_theta", config.get("rope_theta", DEFAULT_ROPE_THETA))
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type == "default":
        return float(theta), None
    if rope_type == "linear":
        return float(theta), float(scaling["factor"])
    raise GGUFError(f"{path}: rope scaling type {rope_type!r} is not supported (only default and linear)")


def parse_hparams(config: dict[str, Any], source: str = "config.json") -> LlamaHParams:
    """Validate that the config is a LLaMA causal LM and extract its hyperparameters."""
    architectures = config.get("architectures") or ["LlamaForCausalLM"]
    if architectures[0] not in SUPPORTED_ARCHITECTURES:
        raise GGUFError(f"{source}: architecture {architectures[0]} is not supported (only LlamaForCausalLM)")
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        rope_theta, rope_factor = _rope_settings(config, source)
        return LlamaHParams(
            context_length=int(config["max_position_embeddings"]),
            embedding_length=hidden,
            block_count=int(config["num_hidden_layers"]),
            feed_forward_length=int(config["intermediate_size"]),
            head_count=heads,
            head_count_kv=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=rope_theta,
            rope_linear_factor=rope_factor,
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        )
    except KeyError as error:
        raise GGUFError(f"{source}: missing key {error.args[0]!r}") from None


def write_hparams(writer: gguf.GGUFWriter, hparams: LlamaHParams) -> None:
    """Add the `llama.*` keys the way llama.cpp's own converter does for LlamaForCausalLM."""
    writer.add_context_length(hparams.context_length)
    writer.add_embedding_length(hparams.embedding_length)
    writer.add_block_count(hparams.block_count)
    writer.add_feed_forward_length(hparams.feed_forward_length)
    writer.add_head_count(hparams.head_count)
    writer.add_head_count_kv(hparams.head_count_kv)
    writer.add_layer_norm_rms_eps(hparams.rms_norm_eps)
    writer.add_rope_freq_base(hparams.rope_theta)
    writer.add_rope_dimension_count(hparams.head_dim)
    if hparams.head_dim != hparams.embedding_length // hparams.head_count:
        writer.add_key_length(hparams.head_dim)
        writer.add_value_length(hparams.head_dim)
    if hparams.rope_linear_factor is not None:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(hparams.rope_linear_factor)
    writer.add_vocab_size(hparams.vocab_size)
