"""Bit-exactness: `codebooga merge` output equals the original script's computation, done here independently.

The reference does what BlockMerge Gradient did: load both whole state dicts in float32 with torch, iterate
model 1's keys in module order per operation, spread `numpy.linspace` ratios, blend with torch float32
arithmetic (cumulatively), handle vocabulary rows, then `.half()`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.merge.parents import (
    FLOAT32_BIN,
    FLOAT32_SAFETENSORS,
    PHIND_LIKE,
    WIZARD_LIKE,
    ModelSpec,
    module_order_shapes,
)

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

# The operations of the shipped CodeBooga-34B-v0.1 recipe, so the tests exercise the real one.
SEED_RECIPE = Path(__file__).resolve().parents[2] / "merge" / "recipes" / "codebooga-34b-v0.1.yaml"
SEED_OPERATIONS = yaml.safe_load(SEED_RECIPE.read_text())["operations"]
OVERLAPPING_OPERATIONS = [
    {"operation": "attention", "filter": "self_attn", "gradient_values": [0.9, 0.1, 0.5]},
    {"operation": "layer 1", "filter": "layers.1.", "gradient_values": [0.3]},
    {"operation": "projections", "filter": "proj", "gradient_values": [0.2, 0.8]},
    {"operation": "outside layers", "no_layers": True, "gradient_values": [0.6, 0.1]},
    {"operation": "embeddings again", "filter": "embed", "gradient_values": [0.35]},
]
LAYER_ONLY_OPERATIONS = [
    {"operation": "layers", "layer_only": True, "gradient_values": [0.1, 0.9, 0.3, 0.7]},
]
RECIPES = {"seed": SEED_OPERATIONS, "overlapping": OVERLAPPING_OPERATIONS, "layer_only": LAYER_ONLY_OPERATIONS}
PAIRS = {
    "bf16-safetensors-320+f16-bin-321": (PHIND_LIKE, WIZARD_LIKE),
    "f16-bin-321+bf16-safetensors-320": (WIZARD_LIKE, PHIND_LIKE),
    "f32-bin-320+f32-safetensors-321": (FLOAT32_BIN, FLOAT32_SAFETENSORS),
}


def load_float32_state_dict(folder: Path) -> dict[str, object]:
    """Everything in a parent, in float32, loaded whole (the original script's way)."""
    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(safetensors_torch.load_file(str(file)))
    for file in sorted(folder.glob("*.bin")):
        state.update(torch.load(file, weights_only=True))
    return {name: tensor.float() for name, tensor in state.items()}


def reference_merge(spec1: ModelSpec, folder1: Path, folder2: Path, operations: list[dict], dtype) -> dict:
    model1 = load_float32_state_dict(folder1)
    model2 = load_float32_state_dict(folder2)
    keys_in_module_order = list(module_order_shapes(spec1.vocab))
    for operation in operations:
        keys = [key for key in keys_in_module_order if operation.get("filter", "") in key]
        if operation.get("layer_only"):
            keys = [key for key in keys if "layer" in key]
        if operation.get("no_layers"):
            keys = [key for key in keys if "layer" not in key]
        values = operation["gradient_values"]
        if len(values) == 1:
            values = [values[0], values[0]]
        per_section = len(keys) // (len(values) - 1)
        gradient = []
        for index in range(len(values) - 1):
            gradient.extend(np.linspace(values[index], values[index + 1], per_section))
        while len(gradient) < len(keys):
            gradient.append(values[-1])
        for key, ratio in zip(keys, gradient):
            tensor1, tensor2 = model1[key], model2[key]
            if tensor1.shape != tensor2.shape:
                rows = min(tensor1.shape[0], tensor2.shape[0])
                merged = tensor1.clone()
                merged[:rows] = tensor1[:rows] * (1 - ratio) + tensor2[:rows] * ratio
                model1[key] = merged
            else:
                model1[key] = (1 - ratio) * tensor1 + ratio * tensor2
    return {key: model1[key].to(dtype) for key in keys_in_module_order}


def write_recipe(path: Path, folder1: Path, folder2: Path, output: Path, operations: list[dict], **extra) -> Path:
    recipe = {
        "model_path1": str(folder1),
        "model_path2": str(folder2),
        "output_model_path": str(output),
        "operations": operations,
        **extra,
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def load_output(folder: Path) -> dict[str, object]:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    state = {}
    for file in sorted(set(index["weight_map"].values())):
        state.update(safetensors_torch.load_file(str(folder / file)))
    assert set(state) == set(index["weight_map"])
    return state


def assert_bit_identical(actual: dict, expected: dict) -> None:
    assert list(expected) == sorted(actual, key=list(expected).index)
    assert set(actual) == set(expected)
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype, name
        assert actual[name].shape == tensor.shape, name
        assert torch.equal(actual[name].view(torch.int16 if tensor.element_size() == 2 else torch.int32),
                           tensor.view(torch.int16 if tensor.element_size() == 2 else torch.int32)), name


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_output_is_bit_identical_to_reference(recipe, pair, model_factory, run_cli, tmp_path):
    spec1, spec2 = PAIRS[pair]
    folder1, folder2 = model_factory(spec1), model_factory(spec2)
    output = tmp_path / "merged"
    recipe_path = write_recipe(
        tmp_path / "recipe.yaml", folder1, folder2, output, RECIPES[recipe], max_shard_size="48KiB"
    )
    code, _, err = run_cli("merge", recipe_path)
    assert code == 0, err
    actual = load_output(output)
    assert_bit_identical(actual, reference_merge(spec1, folder1, folder2, RECIPES[recipe], torch.float16))
    assert len(list(output.glob("*.safetensors"))) > 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["merged", "recipe.yaml"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_other_output_dtypes_match_reference(dtype, model_factory, run_cli, tmp_path):
    folder1, folder2 = model_factory(PHIND_LIKE), model_factory(WIZARD_LIKE)
    recipe_path = write_recipe(tmp_path / "recipe.yaml", folder1, folder2, tmp_path / "out", SEED_OPERATIONS)
    code, _, err = run_cli("merge", recipe_path, "--dtype", dtype)
    assert code == 0, err
    expected = reference_merge(PHIND_LIKE, folder1, folder2, SEED_OPERATIONS, getattr(torch, dtype))
    assert_bit_identical(load_output(tmp_path / "out"), expected)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == dtype


def test_tiny_chunks_give_the_same_bits(model_factory, tmp_path):
    from codebooga.merge.pipeline import execute_merge, prepare_merge

    folder1, folder2 = model_factory(WIZARD_LIKE), model_factory(PHIND_LIKE)
    recipe_path = write_recipe(tmp_path / "recipe.yaml", folder1, folder2, tmp_path / "out", OVERLAPPING_OPERATIONS)
    prepared = prepare_merge(recipe_path)
    try:
        execute_merge(prepared, show_progress=False, chunk_bytes=3 * 64 * 4)
    finally:
        prepared.close()
    expected = reference_merge(WIZARD_LIKE, folder1, folder2, OVERLAPPING_OPERATIONS, torch.float16)
    assert_bit_identical(load_output(tmp_path / "out"), expected)


def test_side_files_come_from_model_1(model_factory, run_cli, tmp_path):
    folder1, folder2 = model_factory(PHIND_LIKE), model_factory(WIZARD_LIKE)
    output = tmp_path / "out"
    code, _, err = run_cli("merge", write_recipe(tmp_path / "r.yaml", folder1, folder2, output, SEED_OPERATIONS))
    assert code == 0, err
    config = json.loads((output / "config.json").read_text())
    expected = json.loads((folder1 / "config.json").read_text())
    assert config == {**expected, "torch_dtype": "float16"}
    assert config["vocab_size"] == 320
    for name in ("generation_config.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        assert (output / name).read_bytes() == (folder1 / name).read_bytes(), name
    index = json.loads((output / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(t.numel() * 2 for t in load_output(output).values())
    assert "model.layers.0.self_attn.rotary_emb.inv_freq" not in index["weight_map"]
