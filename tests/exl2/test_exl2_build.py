"""`codebooga build --exl2 BITS`: options and CUDA checked before the merge starts, the output folder name, and an
up-to-date EXL2 step skipped (and listed with SHA-256s) without needing a GPU."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import codebooga.merge.build
from exl2_helpers import gpu_skip_reason
from codebooga.merge.build import build, exl2_folder
from codebooga.merge.exl2.convert import Exl2Job
from codebooga.merge.gguf.manifest import Manifest, file_record, sha256_file

needs_no_gpu = pytest.mark.skipif(gpu_skip_reason() is None, reason="this machine can run EXL2")


@pytest.fixture(scope="module")
def recipe(make_recipe: Callable[[str], Path]) -> Path:
    return make_recipe("TinyBooga-v0.1")


def test_the_exl2_folder_is_named_after_the_merged_model_and_bits() -> None:
    assert exl2_folder(Path("/m/CodeBooga-34B-v0.1"), 4.25) == Path("/m/CodeBooga-34B-v0.1-4.25bpw-exl2")
    assert exl2_folder(Path("/m/CodeBooga-34B-v0.1"), 6.0) == Path("/m/CodeBooga-34B-v0.1-6bpw-exl2")


@pytest.mark.parametrize(
    ("args", "words"),
    [(("--exl2", "9"), "--exl2 9: bits per weight must be between 2 and 8"),
     (("--exl2", "4.25", "--exl2-head-bits", "7"), "--exl2-head-bits 7: must be one of"),
     (("--exl2", "4.25", "--exl2-calibration", "/no/cal.parquet"), "no such file")],
)  # fmt: skip
def test_bad_exl2_options_fail_before_anything_runs(run_cli, recipe: Path, args: tuple[str, ...], words: str) -> None:
    code, _, err = run_cli("build", recipe, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err
    assert not (recipe.parent / "TinyBooga-v0.1").exists()


@needs_no_gpu
def test_without_cuda_the_build_refuses_before_merging(run_cli, recipe: Path) -> None:
    code, _, err = run_cli("build", recipe, "--exl2", "4.25")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("codebooga: error: --exl2: EXL2 quantization needs")
    assert not (recipe.parent / "TinyBooga-v0.1").exists()


@needs_no_gpu
def test_an_up_to_date_exl2_step_is_skipped_without_a_gpu(recipe: Path) -> None:
    first = build(recipe, ["Q4_K_M"], threads=2, progress=False)
    merged = recipe.parent / "TinyBooga-v0.1"
    job = Exl2Job(merged, exl2_folder(merged, 4.25), 4.25)
    # Stand in for a finished GPU run: an output folder recorded with the key the build computes.
    job.output_dir.mkdir()
    (job.output_dir / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "exl2"}}))
    (job.output_dir / "output.safetensors").write_bytes(b"weights")
    manifest = Manifest.load(first.manifest)
    files = [file_record(path, sha256_file(path)) for path in sorted(job.output_dir.iterdir())]
    manifest.record("exl2 4.25bpw", key=codebooga.merge.build._exl2_key(job, manifest), files=files, seconds=1.0)

    again = build(recipe, ["Q4_K_M"], progress=False, exl2_bits=4.25)
    assert again.ran == [] and "quantize EXL2 4.25bpw → TinyBooga-v0.1-4.25bpw-exl2" in again.skipped
    assert again.outputs[-1] == job.output_dir
    listed = json.loads(first.manifest.read_text())["outputs"]
    assert {"file": "TinyBooga-v0.1-4.25bpw-exl2/output.safetensors", "size": 7,
            "sha256": sha256_file(job.output_dir / "output.safetensors")} in listed  # fmt: skip

    (job.output_dir / "output.safetensors").write_bytes(b"changed!")
    with pytest.raises(codebooga.merge.build.Exl2Error, match="EXL2 quantization needs"):
        build(recipe, ["Q4_K_M"], progress=False, exl2_bits=4.25)
