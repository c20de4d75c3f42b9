"""`codebooga merge` as a user meets it: one-line errors, nothing left behind, dry-run, --force, Ctrl-C."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.merge.parents import PHIND_LIKE, WIZARD_LIKE, ModelSpec, module_order_shapes

SEED = [
    {"operation": "lm_head", "filter": "lm_head", "gradient_values": [0.75]},
    {"operation": "self_attn", "filter": "self_attn", "gradient_values": [0.75, 0.25]},
]


def recipe_file(tmp_path: Path, model1: Path | str, model2: Path | str, operations=SEED, **extra) -> Path:
    document = {
        "model_path1": str(model1),
        "model_path2": str(model2),
        "output_model_path": str(tmp_path / "out"),
        "operations": operations,
        **extra,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def assert_one_line_failure(result: tuple[int, str, str], *fragments: str) -> None:
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("codebooga: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def assert_nothing_written(tmp_path: Path) -> None:
    assert sorted(path.name for path in tmp_path.iterdir()) == ["recipe.yaml"]


@pytest.fixture()
def parents(model_factory):
    return model_factory(PHIND_LIKE), model_factory(WIZARD_LIKE)


def test_missing_model_folder(run_cli, parents, tmp_path):
    result = run_cli("merge", recipe_file(tmp_path, tmp_path / "nowhere", parents[1]))
    assert_one_line_failure(result, "model folder not found", "nowhere")
    assert_nothing_written(tmp_path)


def test_folder_without_weights(run_cli, parents, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    result = run_cli("merge", recipe_file(tmp_path, parents[0], empty))
    assert_one_line_failure(result, "no model weights", "empty")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "recipe.yaml"]


def test_filter_matching_nothing(run_cli, parents, tmp_path):
    operations = [{"operation": "attention", "filter": "self_atn", "gradient_values": [0.5]}]
    result = run_cli("merge", recipe_file(tmp_path, *parents, operations))
    assert_one_line_failure(result, "operation 'attention'", "'self_atn'", "matches no tensor")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("operation", "fragments"),
    [
        ({"operation": "mlp", "filter": "mlp", "gradient_values": []}, ("operation 'mlp'", "gradient_values")),
        ({"operation": "mlp", "filter": "mlp"}, ("operation 'mlp'", "gradient_values")),
        ({"operation": "mlp", "gradient_values": ["high"]}, ("only numbers",)),
        ({"operation": "mlp", "gradient_value": [0.5]}, ("unknown key 'gradient_value'",)),
        ({"operation": "x", "layer_only": True, "no_layers": True, "gradient_values": [1]}, ("select nothing",)),
    ],
)
def test_bad_operations(operation, fragments, run_cli, parents, tmp_path):
    result = run_cli("merge", recipe_file(tmp_path, *parents, [operation]))
    assert_one_line_failure(result, *fragments)
    assert_nothing_written(tmp_path)


def test_bad_yaml_and_bad_shard_size(run_cli, parents, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("model_path1: [unclosed\n")
    assert_one_line_failure(run_cli("merge", path), "not valid YAML", "line")
    path = recipe_file(tmp_path, *parents, max_shard_size="lots")
    assert_one_line_failure(run_cli("merge", path), "max_shard_size 'lots'")
    assert_one_line_failure(run_cli("merge", tmp_path / "missing.yaml"), "recipe not found")
    assert_nothing_written(tmp_path)


def test_tensor_model_2_lacks(run_cli, model_factory, tmp_path):
    lacking = ModelSpec(seed=5, vocab=320, dtype="float16", layout="safetensors-single",
                        drop=frozenset({"model.layers.2.self_attn.v_proj.weight"}))
    result = run_cli("merge", recipe_file(tmp_path, model_factory(PHIND_LIKE), model_factory(lacking)))
    assert_one_line_failure(result, "lacks tensor model.layers.2.self_attn.v_proj.weight", "'self_attn'")
    assert_nothing_written(tmp_path)


def test_shapes_that_differ_beyond_vocab_rows(run_cli, model_factory, tmp_path):
    odd = ModelSpec(seed=6, vocab=320, dtype="float16", layout="safetensors-single",
                    overrides={"model.layers.1.self_attn.o_proj.weight": (64, 32)})
    result = run_cli("merge", recipe_file(tmp_path, model_factory(PHIND_LIKE), model_factory(odd)))
    assert_one_line_failure(result, "model.layers.1.self_attn.o_proj.weight", "64x64", "64x32")
    assert_nothing_written(tmp_path)


def test_architectures_that_differ(run_cli, model_factory, tmp_path):
    shallow = ModelSpec(seed=7, vocab=320, dtype="float16", layout="safetensors-single",
                        config_overrides={"num_hidden_layers": 3})
    result = run_cli("merge", recipe_file(tmp_path, model_factory(PHIND_LIKE), model_factory(shallow)))
    assert_one_line_failure(result, "architectures differ", "num_hidden_layers", "4", "3")
    assert_nothing_written(tmp_path)


def test_unreadable_bin(run_cli, parents, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((parents[1] / "config.json").read_text())
    (broken / "pytorch_model.bin").write_bytes(b"definitely not a zip archive")
    result = run_cli("merge", recipe_file(tmp_path, parents[0], broken))
    assert_one_line_failure(result, "cannot read", "pytorch_model.bin")


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_bin_with_pickle_code_is_refused_without_running_it(run_cli, parents, tmp_path):
    torch = pytest.importorskip("torch")
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "config.json").write_text((parents[1] / "config.json").read_text())
    payload = _Exploit()
    payload.marker = str(tmp_path / "pwned")
    torch.save({"model.embed_tokens.weight": payload}, evil / "pytorch_model.bin")
    result = run_cli("merge", recipe_file(tmp_path, parents[0], evil))
    assert_one_line_failure(result, "cannot read", "pytorch_model.bin")
    assert not (tmp_path / "pwned").exists()


def test_existing_output_needs_force(run_cli, parents, tmp_path):
    recipe = recipe_file(tmp_path, *parents)
    output = tmp_path / "out"
    output.mkdir()
    (output / "stale.txt").write_text("old")
    assert_one_line_failure(run_cli("merge", recipe), "already exists", "--force")
    assert (output / "stale.txt").exists()
    code, _, err = run_cli("merge", recipe, "--force")
    assert code == 0, err
    assert not (output / "stale.txt").exists()
    assert (output / "model.safetensors.index.json").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "recipe.yaml"]


def test_output_inside_an_input_is_refused(run_cli, parents, tmp_path):
    recipe = recipe_file(tmp_path, *parents)
    result = run_cli("merge", recipe, "--output", parents[0], "--force")
    assert_one_line_failure(result, "overlaps input model folder")
    assert (parents[0] / "config.json").exists()


def test_output_flag_overrides_recipe(run_cli, parents, tmp_path):
    code, _, err = run_cli("merge", recipe_file(tmp_path, *parents), "--output", tmp_path / "elsewhere")
    assert code == 0, err
    assert (tmp_path / "elsewhere" / "config.json").exists()
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_every_tensor_and_writes_nothing(run_cli, parents, tmp_path):
    code, out, err = run_cli("merge", recipe_file(tmp_path, *parents), "--dry-run")
    assert code == 0, err
    assert_nothing_written(tmp_path)
    lines = out.splitlines()
    for name in module_order_shapes(320):
        assert any(f" {name} " in line for line in lines), name
    q0 = next(line for line in lines if "model.layers.0.self_attn.q_proj.weight" in line)
    assert "self_attn 0.7500" in q0
    o3 = next(line for line in lines if "model.layers.3.self_attn.o_proj.weight" in line)
    assert "self_attn 0.2500" in o3
    head = next(line for line in lines if " lm_head.weight " in line)
    assert "lm_head 0.7500" in head and "model 1 320, model 2 321" in head
    norm = next(line for line in lines if " model.norm.weight " in line)
    assert "copied from model 1" in norm
    assert "selected" in out and "self_attn 16" in out
    assert "39 tensors: 17 blended, 22 copied from model 1" in out


def test_interrupt_leaves_no_output(run_cli, parents, tmp_path, monkeypatch):
    import codebooga.merge.pipeline

    def interrupted_run(plan, model1, model2, writer, dtype, progress, chunk_bytes):
        def stop_midway(tensor, nbytes):
            if tensor.name.startswith("model.layers.2."):
                raise KeyboardInterrupt
        codebooga.merge.engine.run_plan(plan, model1, model2, writer, dtype, stop_midway, chunk_bytes)

    monkeypatch.setattr(codebooga.merge.pipeline, "run_plan", interrupted_run)
    code, _, err = run_cli("merge", recipe_file(tmp_path, *parents))
    assert code == 130, err
    assert "interrupted" in err
    assert_nothing_written(tmp_path)


def test_write_failure_is_one_line_and_cleans_up(run_cli, parents, tmp_path, monkeypatch):
    import codebooga.merge.writer

    def disk_full(self, name, chunk):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(codebooga.merge.writer.ShardedWriter, "write", disk_full)
    assert_one_line_failure(run_cli("merge", recipe_file(tmp_path, *parents)), "No space left on device")
    assert_nothing_written(tmp_path)


def test_progress_and_summary_go_to_stderr(run_cli, parents, tmp_path):
    code, out, err = run_cli("merge", recipe_file(tmp_path, *parents))
    assert code == 0
    assert out == ""
    assert "merged 39 tensors into" in err


def test_merge_is_registered_with_the_dispatcher():
    import codebooga.server.cli

    assert "codebooga.merge.cli" in codebooga.server.cli.SUBCOMMAND_MODULES


def test_cli_module_imports_no_heavy_dependencies():
    code = "import sys, codebooga.merge.cli; heavy = {'torch', 'numpy', 'yaml', 'tqdm'} & set(sys.modules); print(sorted(heavy))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

