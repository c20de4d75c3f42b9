"""Loading an EXL2 folder into exllamav2: config, weights (auto or manual GPU split), KV cache, dynamic generator.

Imports exllamav2 and torch; only the loader imports this module, after `missing_exl2_requirement()` said
they can work.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebooga.merge.exl2.legacy_config import exllamav2_rope_keys
from codebooga.merge.shared.files import read_json_object
from codebooga.server.engine.context_size import capped_context
from codebooga.server.engine.types import BackendJob

log = logging.getLogger("codebooga.exllamav2")

PAGE_SIZE = 256  # exllamav2's paged-attention page; the cache length must be a multiple of it


class Exl2LoadError(Exception):
    """The folder could not be loaded by exllamav2; the message says which folder and why, in one line."""


@dataclass(frozen=True)
class Exl2Options:
    max_seq_len: int = 16384  # per sequence, at most the model's own; 0 = the model's own
    cache_type: str = "fp16"
    gpu_split: tuple[float, ...] | None = None  # GB of weights per GPU; None = autosplit
    parallel: int = 4


def apply_rope_parameters(config: Any, folder: Path) -> None:
    """RoPE settings that transformers 5 wrote under `rope_parameters`, where exllamav2 does not look (it would
    silently use a base of 10000): the base, and a linear scaling factor; other scaling types are refused."""
    rope = exllamav2_rope_keys(read_json_object(folder / "config.json"))
    if "rope_theta" in rope:
        config.rotary_embedding_base = float(rope["rope_theta"])
    scaling = rope.get("rope_scaling")
    if scaling is not None:
        if scaling.get("rope_type") != "linear":
            raise Exl2LoadError(
                f"{folder}/config.json: RoPE scaling {scaling.get('rope_type')!r} is only under rope_parameters, "
                "where exllamav2 does not read it; copy it to a top-level rope_scaling entry"
            )
        config.scale_pos_emb = float(scaling["factor"])


def has_paged_attention() -> bool:
    """exllamav2 batches several jobs only in paged mode, which needs flash-attn >= 2.5.7."""
    if importlib.util.find_spec("flash_attn") is None:
        return False
    from exllamav2.attn import has_flash_attn_with_paged

    return bool(has_flash_attn_with_paged)


def cache_tokens(max_seq_len: int, slots: int) -> int:
    """Total cache length: room for every slot's full sequence, rounded up to whole pages."""
    total = max_seq_len * slots
    return -(-total // PAGE_SIZE) * PAGE_SIZE


class Exl2Model:
    """The loaded model, cache and generator; `make_job` turns one choice of a `BackendJob` into a generator job."""

    def __init__(self, folder: Path, options: Exl2Options, end_of_generation: frozenset[int]) -> None:
        from exllamav2 import (
            ExLlamaV2,
            ExLlamaV2Cache,
            ExLlamaV2Cache_Q4,
            ExLlamaV2Cache_Q6,
            ExLlamaV2Cache_Q8,
            ExLlamaV2Config,
            ExLlamaV2Tokenizer,
        )
        from exllamav2.generator import ExLlamaV2DynamicGenerator

        caches = {"fp16": ExLlamaV2Cache, "q8": ExLlamaV2Cache_Q8, "q6": ExLlamaV2Cache_Q6, "q4": ExLlamaV2Cache_Q4}
        paged = has_paged_attention()
        self.slots = options.parallel if paged else 1
        if options.parallel > 1 and not paged:
            log.warning("flash-attn >= 2.5.7 is not installed: exllamav2 runs one sequence at a time (--parallel 1)")
        try:
            config = ExLlamaV2Config(str(folder))
            config.arch_compat_overrides()
            apply_rope_parameters(config, folder)
            config.max_seq_len = capped_context(options.max_seq_len, config.max_seq_len)
            self.max_seq_len = config.max_seq_len
            self.model = ExLlamaV2(config)
            cache_class = caches[options.cache_type]
            length = cache_tokens(self.max_seq_len, self.slots)
            if options.gpu_split is None:
                self.cache = cache_class(self.model, max_seq_len=length, lazy=True)
                self.model.load_autosplit(self.cache, progress=False)
            else:
                self.model.load(gpu_split=list(options.gpu_split), progress=False)
                self.cache = cache_class(self.model, max_seq_len=length)
            self.tokenizer = ExLlamaV2Tokenizer(config)
            self.generator = ExLlamaV2DynamicGenerator(
                model=self.model, cache=self.cache, tokenizer=self.tokenizer, max_batch_size=self.slots, paged=paged
            )
        except Exl2LoadError:
            raise
        except Exception as error:  # exllamav2 reports bad folders and OOM with assorted exception types
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise Exl2LoadError(f"exllamav2 could not load {folder}: {message.lstrip(' #')}") from error
        self.padded_vocab_size = self.generator.padded_vocab_size
        self.vocab_size = config.vocab_size
        self._end_of_generation = sorted(end_of_generation)

    def make_job(self, spec: BackendJob, choice: int, identifier: object) -> Any:
        import torch
        from exllamav2.generator import ExLlamaV2DynamicJob

        from codebooga.server.engine.exllamav2.sampling import job_seed, make_settings

        return ExLlamaV2DynamicJob(
            input_ids=torch.tensor([spec.prompt_tokens], dtype=torch.long),
            max_new_tokens=spec.max_new_tokens,
            gen_settings=make_settings(spec.sampling, self.padded_vocab_size),
            seed=job_seed(spec.sampling, choice),
            stop_conditions=self._end_of_generation,
            return_logits=spec.top_logprobs is not None,
            decode_special_tokens=False,
            token_healing=False,
            identifier=identifier,
        )

    def close(self) -> None:
        self.model.unload()
