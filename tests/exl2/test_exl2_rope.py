"""RoPE settings that transformers 5 writes under `rope_parameters` reach exllamav2, which reads only top-level
keys: lifted into the converter's staged config.json, and applied when serving a folder that lacks them."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from codebooga.merge.exl2.convert import Exl2Job, needs_staging, prepare_input
from codebooga.merge.exl2.legacy_config import exllamav2_rope_keys
from codebooga.server.engine.exllamav2.model import Exl2LoadError, apply_rope_parameters

TRANSFORMERS_5 = {"rope_parameters": {"rope_theta": 1_000_000.0, "rope_type": "default"}, "vocab_size": 608}


def test_the_base_is_lifted_from_rope_parameters() -> None:
    assert exllamav2_rope_keys(TRANSFORMERS_5) == {"rope_theta": 1_000_000.0}


def test_linear_scaling_is_lifted_with_its_type_and_factor() -> None:
    config = {"rope_parameters": {"rope_theta": 1e6, "rope_type": "linear", "factor": 4.0}}
    assert exllamav2_rope_keys(config) == {"rope_theta": 1e6, "rope_scaling": {"rope_type": "linear", "factor": 4.0}}


@pytest.mark.parametrize("config", [
    {"rope_theta": 1e6, "rope_scaling": {"type": "linear", "factor": 2.0}},  # transformers 4 style
    {"rope_theta": 1e6, "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}},  # both
    {"vocab_size": 608},  # nothing said: exllamav2's own default is right
])  # fmt: skip
def test_configs_exllamav2_already_reads_are_left_alone(config: dict) -> None:
    assert exllamav2_rope_keys(config) == {}


def test_the_converter_reads_a_staged_config_with_the_base_on_top(llama_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for source in llama_dir.iterdir():
        (model / source.name).symlink_to(source)
    (model / "config.json").unlink()
    config = {**json.loads((llama_dir / "config.json").read_text()), **TRANSFORMERS_5}
    config.pop("rope_theta", None)
    (model / "config.json").write_text(json.dumps(config))
    job = Exl2Job(model, tmp_path / "out", 4.25)
    assert needs_staging(model) and job.input_dir == job.work_dir / "input"
    prepare_input(job)
    staged = json.loads((job.input_dir / "config.json").read_text())
    assert staged == {**config, "rope_theta": 1_000_000.0}
    assert json.loads((model / "config.json").read_text()) == config  # the input is untouched


def test_serving_applies_the_base_and_a_linear_factor(tmp_path: Path) -> None:
    config = SimpleNamespace(rotary_embedding_base=10000.0, scale_pos_emb=1.0)
    (tmp_path / "config.json").write_text(json.dumps(
        {"rope_parameters": {"rope_theta": 5e5, "rope_type": "linear", "factor": 2.0}}
    ))  # fmt: skip
    apply_rope_parameters(config, tmp_path)
    assert config.rotary_embedding_base == 5e5 and config.scale_pos_emb == 2.0


def test_serving_refuses_scaling_exllamav2_would_not_see(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"rope_parameters": {"rope_theta": 5e5, "rope_type": "yarn"}}))
    with pytest.raises(Exl2LoadError, match="RoPE scaling 'yarn' is only under rope_parameters"):
        apply_rope_parameters(SimpleNamespace(), tmp_path)
