"""`codebooga eval --recipe A --recipe B --quant Q4_K_M`: each merge variant built by `codebooga build`, served,
scored and ranked. The variants are tiny random LLaMAs (tests/llama_checkpoints.py): their answers are noise, the
workflow is what is checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_two_recipes_are_built_served_and_ranked(
    run_cli: Callable[..., tuple[int, str, str]], make_recipe: Callable[[str], Path], tmp_path: Path
) -> None:
    recipes = [make_recipe("VariantA-v0.1"), make_recipe("VariantB-v0.1")]
    code, out, err = run_cli(
        "eval", "--recipe", recipes[0], "--recipe", recipes[1], "--quant", "Q4_K_M", "--suite", "humaneval",
        "--problems", "23", "--max-tokens", "8", "--serve-arg=--ctx-size=1024", "--serve-arg=--threads=2",
        "--out", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    for recipe, name in zip(recipes, ("VariantA-v0.1", "VariantB-v0.1")):
        assert (recipe.parent / f"{name}-GGUF" / f"{name}.Q4_K_M.gguf").is_file()
    report = json.loads((tmp_path / "report.json").read_text())
    assert [entry["label"] for entry in report["endpoints"]] == ["VariantA-v0.1.Q4_K_M.gguf", "VariantB-v0.1.Q4_K_M.gguf"]
    assert all(isinstance(entry["rank_points"], int) for entry in report["endpoints"])
    assert len(report["paired"]) == 1
