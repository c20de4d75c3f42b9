"""`codebooga build`: a CodeBooga-shaped recipe over two random parents, end to end, then resumed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import gguf
import pytest
import yaml

import codebooga.merge.build
from codebooga.merge.build import build
from codebooga.merge.gguf.manifest import sha256_file

@pytest.fixture(scope="module")
def recipe(make_recipe: Callable[[str], Path]) -> Path:
    return make_recipe("TinyBooga-v0.1")


@pytest.fixture(scope="module")
def first_build(recipe: Path) -> codebooga.merge.build.BuildResult:
    return build(recipe, ["Q4_K_M"], threads=2, progress=False)


def test_build_produces_a_named_q4_k_m_file_and_a_manifest(recipe: Path, first_build: codebooga.merge.build.BuildResult) -> None:
    folder = recipe.parent / "TinyBooga-v0.1-GGUF"
    target = folder / "TinyBooga-v0.1.Q4_K_M.gguf"
    assert first_build.outputs == [target]
    assert first_build.ran == [
        f"merge → {recipe.parent / 'TinyBooga-v0.1'}",
        "convert → TinyBooga-v0.1.F16.gguf",
        "quantize Q4_K_M → TinyBooga-v0.1.Q4_K_M.gguf",
    ]
    assert sorted(path.name for path in folder.iterdir()) == ["TinyBooga-v0.1.Q4_K_M.gguf", "manifest.json"]
    reader = gguf.GGUFReader(target)
    assert reader.fields["general.name"].contents() == "TinyBooga-v0.1"
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert reader.fields["tokenizer.chat_template"].contents().startswith('{#- stop: ["### Instruction:"] -#}')

    manifest = json.loads(first_build.manifest.read_text())
    assert manifest["recipe"]["sha256"] == sha256_file(recipe)
    assert [entry["model"] for entry in manifest["inputs"]] == [
        yaml.safe_load(recipe.read_text())[key] for key in ("model_path1", "model_path2")
    ]
    assert "model.safetensors" in {Path(item["path"]).name for item in manifest["inputs"][0]["files"]}
    assert manifest["outputs"] == [
        {"file": target.name, "size": target.stat().st_size, "sha256": sha256_file(target)}
    ]
    assert set(manifest["steps"]) == {"merge", "convert", "quantize Q4_K_M"}


def test_rerun_skips_every_finished_step(recipe: Path, first_build: codebooga.merge.build.BuildResult) -> None:
    target = first_build.outputs[0]
    before = target.stat().st_mtime_ns
    again = build(recipe, ["Q4_K_M"], progress=False)
    assert again.ran == []
    assert len(again.skipped) == 3
    assert target.stat().st_mtime_ns == before


def test_interrupted_quantization_is_redone_and_nothing_else(
    recipe: Path, first_build: codebooga.merge.build.BuildResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_quantize = codebooga.merge.build.quantize

    def interrupted(source: Path, target: Path, kind: str, **options: object) -> Path:
        calls.append(kind)
        if kind == "Q8_0" and calls.count("Q8_0") == 1:
            raise KeyboardInterrupt
        return real_quantize(source, target, kind, **options)

    monkeypatch.setattr(codebooga.merge.build, "quantize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(recipe, ["Q4_K_M", "Q8_0"], progress=False)
    folder = first_build.outputs[0].parent
    assert not (folder / "TinyBooga-v0.1.Q8_0.gguf").exists()
    assert not [path.name for path in folder.iterdir() if path.name.startswith(".")]

    resumed = build(recipe, ["Q4_K_M", "Q8_0"], progress=False)
    assert resumed.ran == ["quantize Q8_0 → TinyBooga-v0.1.Q8_0.gguf"]
    assert [path.name for path in resumed.outputs] == ["TinyBooga-v0.1.Q4_K_M.gguf", "TinyBooga-v0.1.Q8_0.gguf"]


def test_changed_output_is_rebuilt(recipe: Path, first_build: codebooga.merge.build.BuildResult) -> None:
    target = first_build.outputs[0]
    original = target.read_bytes()
    target.write_bytes(original[:-1024])
    rebuilt = build(recipe, ["Q4_K_M"], keep_f16=True, progress=False)
    assert rebuilt.ran == ["convert → TinyBooga-v0.1.F16.gguf", "quantize Q4_K_M → TinyBooga-v0.1.Q4_K_M.gguf"]
    assert target.read_bytes() == original
    assert (target.parent / "TinyBooga-v0.1.F16.gguf").exists()
