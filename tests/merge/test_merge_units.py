"""The building blocks: checkpoint reader, module order, gradient ratios, sizes, dtype rounding, sharding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codebooga.merge.checkpoint import CheckpointError, open_checkpoint
from codebooga.merge.shared.files import UnreadableFileError
from codebooga.merge.dtypes import narrow_from_float32
from codebooga.merge.plan import gradient_ratios, module_order_key
from codebooga.merge.recipe import RecipeError, parse_size
from codebooga.merge.writer import OutputTensor, assign_shards
from tests.merge.parents import FLOAT32_BIN, PHIND_LIKE, WIZARD_LIKE, generate_state_dict, module_order_shapes

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("spec", [PHIND_LIKE, WIZARD_LIKE, FLOAT32_BIN], ids=["st-sharded", "bin-sharded", "bin-single"])
def test_checkpoint_reader_matches_torch(spec, model_factory):
    expected = generate_state_dict(spec)
    with open_checkpoint(model_factory(spec)) as checkpoint:
        assert checkpoint.format == ("safetensors" if "safetensors" in spec.layout else "pytorch")
        assert checkpoint.config["vocab_size"] == spec.vocab
        assert set(expected) <= set(checkpoint.names)
        for name, tensor in expected.items():
            info = checkpoint.info(name)
            assert info.shape == tuple(tensor.shape) and info.dtype == spec.dtype
            assert info.nbytes == tensor.numel() * tensor.element_size()
            assert np.array_equal(checkpoint.read(name), tensor.float().numpy())
            assert np.array_equal(checkpoint.read(name, 1, 3), tensor[1:3].float().numpy())
            raw = checkpoint.read_raw(name, 0, 2)
            bits = tensor[0:2].view(torch.int16 if tensor.element_size() == 2 else torch.int32).numpy()
            assert raw.tobytes() == bits.tobytes()


def test_checkpoint_read_into_buffer_and_bad_range(model_factory):
    with open_checkpoint(model_factory(PHIND_LIKE)) as checkpoint:
        buffer = np.empty((2, 64), dtype=np.float32)
        assert checkpoint.read("lm_head.weight", 5, 7, out=buffer) is buffer
        with pytest.raises(IndexError):
            checkpoint.read("lm_head.weight", 300, 400)


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="model folder not found"):
        open_checkpoint(tmp_path / "absent")
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(UnreadableFileError, match="corrupt safetensors header"):
        open_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    with pytest.raises(CheckpointError, match="missing file gone.safetensors"):
        open_checkpoint(tmp_path)


def test_truncated_safetensors_is_rejected(model_factory, tmp_path):
    source = model_factory(PHIND_LIKE) / "model-00001-of-00003.safetensors"
    (tmp_path / "model.safetensors").write_bytes(source.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        open_checkpoint(tmp_path)


def test_module_order_matches_transformers_state_dict():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=12,
        num_attention_heads=2, num_key_value_heads=1,
    )
    names = list(transformers.LlamaForCausalLM(config).state_dict())
    assert sorted(reversed(names), key=module_order_key) == names
    assert list(module_order_shapes(32, layers=12)) == names


def test_numeric_layer_order_and_unknown_names():
    names = ["model.layers.10.mlp.up_proj.weight", "model.layers.2.mlp.up_proj.weight", "lm_head.weight",
             "model.layers.2.zzz.weight", "model.layers.2.self_attn.q_proj.bias", "model.layers.2.self_attn.q_proj.weight"]
    assert sorted(names, key=module_order_key) == [
        "model.layers.2.self_attn.q_proj.weight", "model.layers.2.self_attn.q_proj.bias",
        "model.layers.2.mlp.up_proj.weight", "model.layers.2.zzz.weight",
        "model.layers.10.mlp.up_proj.weight", "lm_head.weight",
    ]


def test_gradient_ratios_follow_the_original_rules():
    assert gradient_ratios((0.75,), 3) == [0.75, 0.75, 0.75]
    assert gradient_ratios((0.0, 1.0), 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    # 7 keys over 3 sections: 2 per section (joins repeat), padded with the last value.
    assert gradient_ratios((0.0, 1.0, 0.0, 1.0), 7) == [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert gradient_ratios((0.2, 0.4, 0.6), 1) == [0.6]
    seed_attention = gradient_ratios((0.75, 0.25), 192)
    assert seed_attention[0] == 0.75 and seed_attention[-1] == 0.25 and len(set(seed_attention)) == 192


@pytest.mark.parametrize(("text", "size"), [
    ("2000MiB", 2000 * 2**20), ("5GB", 5 * 10**9), ("1.5GiB", 3 * 2**29), ("512kb", 512_000), (4096, 4096),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "5XB", "-3MB", 0, True])
def test_parse_size_rejects(text):
    with pytest.raises(RecipeError, match="max_shard_size"):
        parse_size(text)


@pytest.fixture(params=["numpy", "torch"])
def conversion_backend(request, monkeypatch):
    """Run a test once with numpy's conversions and once with torch's (after the background import)."""
    import codebooga.merge.dtypes

    if request.param == "numpy":
        monkeypatch.setattr(codebooga.merge.dtypes._ACCELERATOR, "module", None)
    else:
        codebooga.merge.dtypes.start_torch_import()
        codebooga.merge.dtypes.finish_torch_import()
        assert codebooga.merge.dtypes._ACCELERATOR.module is not None
    return request.param


def test_narrowing_matches_torch(conversion_backend):
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-45, 3.4e38, -3.4e38, 65520.0, 6e-8],
                       dtype=np.float32)
    ties = (np.arange(0x3F800000, 0x3F800000 + 70000, dtype=np.uint32)).view(np.float32)
    values = np.concatenate([special, ties, np.random.default_rng(0).standard_normal(100000).astype(np.float32)])
    expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(narrow_from_float32(values, "bfloat16"), expected)
    half = torch.from_numpy(values).half().numpy()
    assert np.array_equal(narrow_from_float32(values, "float16").view(np.uint16), half.view(np.uint16))


def test_widening_is_exact(conversion_backend):
    from codebooga.merge.dtypes import widen_to_float32

    every_pattern = np.arange(65536, dtype=np.uint16)
    for dtype, torch_dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        raw = every_pattern.view(np.float16) if dtype == "float16" else every_pattern
        expected = torch.from_numpy(every_pattern.view(np.int16)).view(torch_dtype).float().numpy()
        out = widen_to_float32(raw, dtype, np.empty(65536, dtype=np.float32))
        assert np.array_equal(out.view(np.uint32), expected.view(np.uint32)), dtype


def test_shards_respect_the_limit_and_keep_order():
    tensors = [OutputTensor(f"t{i}", (size,), "float16") for i, size in enumerate([10, 20, 30, 100, 5, 5])]
    shards = assign_shards(tensors, 200)
    assert [[t.name for t in shard] for shard in shards] == [["t0", "t1", "t2"], ["t3"], ["t4", "t5"]]
    assert all(sum(t.nbytes for t in shard) <= 200 for shard in shards)


def test_written_output_reads_back_with_the_safetensors_library(model_factory, tmp_path: Path):
    from codebooga.merge.writer import ShardedWriter

    safetensors_torch = pytest.importorskip("safetensors.torch")
    tensors = [OutputTensor("a", (3, 4), "bfloat16"), OutputTensor("b", (5,), "float32"), OutputTensor("c", (), "float16")]
    values = {"a": np.arange(12, dtype=np.uint16).reshape(3, 4), "b": np.arange(5, dtype=np.float32),
              "c": np.array(1.5, dtype=np.float16)}
    with ShardedWriter(tmp_path, tensors, 30) as writer:
        writer.write("a", values["a"][:2])
        writer.write("a", values["a"][2:])
        writer.write("b", values["b"])
        writer.write("c", values["c"])
        writer.finish()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
                                   "c": "model-00002-of-00002.safetensors"}
    loaded = {}
    for file in sorted(tmp_path.glob("*.safetensors")):
        loaded.update(safetensors_torch.load_file(str(file)))
    assert loaded["a"].view(torch.int16).numpy().view(np.uint16).tolist() == values["a"].tolist()
    assert loaded["b"].tolist() == values["b"].tolist() and loaded["c"].item() == 1.5


RECIPES = Path(__file__).resolve().parents[2] / "merge" / "recipes"


def test_shipped_seed_recipe_selects_what_the_model_card_says():
    from codebooga.merge.hub import is_hub_id
    from codebooga.merge.plan import gradient_ratios
    from codebooga.merge.recipe import load_recipe

    recipe = load_recipe(RECIPES / "codebooga-34b-v0.1.yaml")
    assert recipe.model_path1 == "Phind/Phind-CodeLlama-34B-v2" and is_hub_id(recipe.model_path2)
    assert recipe.max_shard_size == 2000 * 2**20
    names = list(module_order_shapes(32000, layers=48))
    counts = {op.label: sum(op.selects(name) for name in names) for op in recipe.operations}
    assert counts == {"lm_head": 1, "embed_tokens": 1, "self_attn": 192, "mlp": 144, "layernorm": 96, "modelnorm": 1}
    mlp = next(op for op in recipe.operations if op.label == "mlp")
    ratios = gradient_ratios(mlp.gradient_values, 144)
    assert ratios[0] == 0.25 and ratios[-1] == 0.75


def test_reversed_recipe_swaps_the_parents_only():
    from codebooga.merge.recipe import load_recipe

    seed = load_recipe(RECIPES / "codebooga-34b-v0.1.yaml")
    reversed_ = load_recipe(RECIPES / "codebooga-34b-v0.1-reversed.yaml")
    assert (reversed_.model_path1, reversed_.model_path2) == (seed.model_path2, seed.model_path1)
    assert reversed_.operations == seed.operations and reversed_.output_model_path != seed.output_model_path
