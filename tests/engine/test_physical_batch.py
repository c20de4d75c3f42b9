"""The physical batch follows the attention kernel: 256 tokens per graph run without flash attention (its score
matrix of ubatch × context per head then stays in the CPU caches: files read 3–8% faster than at 512), 512 with it
or where llama.cpp decides, never more than the logical batch. Checked on the context llama.cpp created."""

from __future__ import annotations

import llama_cpp as llama
import pytest

from codebooga.server.embedded_model import embedded_model_path
from codebooga.server.engine.llama_cpp.model import ContextOptions, LlamaCppModel


@pytest.mark.parametrize(
    ("flash_attention", "n_batch", "ubatch"), [("auto", 512, 512), ("on", 512, 512), ("off", 512, 256), ("off", 64, 64)]
)
def test_the_context_gets_the_physical_batch_of_its_attention_kernel(
    flash_attention: str, n_batch: int, ubatch: int
) -> None:
    options = ContextOptions(
        n_ctx_per_seq=1024, n_parallel=1, n_threads=2, n_batch=n_batch, flash_attention=flash_attention
    )
    model = LlamaCppModel(embedded_model_path(), options)
    try:
        assert llama.llama_n_ubatch(model.context) == ubatch
        assert llama.llama_n_batch(model.context) == n_batch
    finally:
        model.close()
