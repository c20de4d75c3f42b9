"""EXL2 test fixtures: the shared random LLaMA checkpoints and an EXL2-looking folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exl2_helpers import write_safetensors_header
from llama_checkpoints import llama_dir, make_checkpoint, make_recipe, tokenizer_model  # noqa: F401


@pytest.fixture()
def exl2_folder(tmp_path: Path) -> Path:
    """A folder shaped like exllamav2's output: signed config.json and EXL2 tensor names."""
    folder = tmp_path / "tiny-4.25bpw-exl2"
    folder.mkdir()
    config = {"architectures": ["LlamaForCausalLM"], "quantization_config": {"quant_method": "exl2", "bits": 4.25}}
    (folder / "config.json").write_text(json.dumps(config))
    write_safetensors_header(folder / "output.safetensors", ["model.layers.0.self_attn.q_proj.q_weight",
                                                           "model.layers.0.self_attn.q_proj.q_invperm"])
    return folder
