"""The converted model computes what the checkpoint computes: llama.cpp logits against transformers' forward pass.

The q/k permutation and rope_theta are silent failure modes (the file loads, the text is garbage); with random
weights at this scale either mistake moves logits by several units, far beyond the 1e-3 tolerance.
"""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import numpy as np
import pytest
import sentencepiece
import torch
import transformers

PROMPT = "def merge(a, b):\n\treturn a + b  # 42 café 数据"
GGML_TYPE_F32 = 0


@pytest.fixture(scope="module")
def prompt_ids(tokenizer_model: Path) -> list[int]:
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model))
    return [processor.bos_id(), *processor.encode(PROMPT)]


@pytest.fixture(scope="module")
def reference(llama_dir: Path, prompt_ids: list[int]) -> np.ndarray:
    model = transformers.LlamaForCausalLM.from_pretrained(llama_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([prompt_ids])).logits[0].numpy()


def llama_cpp_logits(path: Path, prompt_ids: list[int]) -> np.ndarray:
    """All-position logits with an F32 KV cache, so the cache adds no rounding of its own."""
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=64, n_threads=2, logits_all=True, verbose=False,
        type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32,
    )  # fmt: skip
    llm.eval(prompt_ids)
    return np.array(llm.scores[: len(prompt_ids)])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_f32_logits_match_transformers(f32_gguf: Path, prompt_ids: list[int], reference: np.ndarray) -> None:
    logits = llama_cpp_logits(f32_gguf, prompt_ids)
    assert np.abs(logits - reference).max() < 1e-3
    assert (logits.argmax(-1) == reference.argmax(-1)).all()


@pytest.mark.parametrize(("fixture", "min_correlation"), [("f16_gguf", 0.9999), ("q4km_gguf", 0.95)])
def test_reduced_precision_logits_stay_correlated(
    request: pytest.FixtureRequest, fixture: str, min_correlation: float, prompt_ids: list[int], reference: np.ndarray
) -> None:
    logits = llama_cpp_logits(request.getfixturevalue(fixture), prompt_ids)
    assert correlation(logits, reference) > min_correlation
