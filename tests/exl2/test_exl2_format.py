"""Choosing the backend from `--model`: GGUF file, EXL2 folder (signed or by tensor names), or a clear refusal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exl2_helpers import gpu_skip_reason, write_safetensors_header
from codebooga.merge.shared.model_format import ModelFormat, ModelFormatError, detect_format


def test_a_file_is_served_by_llama_cpp(tmp_path: Path) -> None:
    model = tmp_path / "tiny.Q4_K_M.gguf"
    model.write_bytes(b"GGUF")
    assert detect_format(model) is ModelFormat.GGUF


def test_a_signed_exl2_folder_is_served_by_exllamav2(exl2_folder: Path) -> None:
    assert detect_format(exl2_folder) is ModelFormat.EXL2


def test_an_unsigned_exl2_folder_is_recognised_by_its_tensor_names(exl2_folder: Path) -> None:
    (exl2_folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    assert detect_format(exl2_folder) is ModelFormat.EXL2


def test_a_plain_hugging_face_folder_is_refused_with_what_to_do(llama_dir: Path) -> None:
    with pytest.raises(ModelFormatError, match="unquantized Hugging Face folder; convert it first"):
        detect_format(llama_dir)


def test_gptq_tensor_names_are_not_exl2(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    write_safetensors_header(tmp_path / "model.safetensors", ["model.layers.0.mlp.up_proj.qweight",
                                                            "model.layers.0.mlp.up_proj.g_idx"])
    with pytest.raises(ModelFormatError, match="unquantized"):
        detect_format(tmp_path)


@pytest.mark.parametrize(
    ("remove", "words"),
    [("config.json", "needs config.json"), ("output.safetensors", "no *.safetensors weights")],
)
def test_incomplete_folders_are_refused(exl2_folder: Path, remove: str, words: str) -> None:
    (exl2_folder / remove).unlink()
    with pytest.raises(ModelFormatError, match=words.replace("*", r"\*")):
        detect_format(exl2_folder)


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no such file or folder"):
        detect_format(tmp_path / "nothing")


@pytest.mark.skipif(gpu_skip_reason() is None, reason="this machine can run EXL2")
def test_serve_refuses_an_exl2_folder_without_cuda_in_one_line(run_cli, exl2_folder: Path) -> None:
    code, out, err = run_cli("serve", "--model", exl2_folder)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"codebooga: error: --model {exl2_folder}: EXL2 models need")
    assert "CUDA" in lines[0] or "exl2" in lines[0]


def test_serve_refuses_an_unquantized_folder_in_one_line(run_cli, llama_dir: Path) -> None:
    code, _, err = run_cli("serve", "--model", llama_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "convert it first" in err


@pytest.mark.parametrize(("value", "words"), [("0,24", "positive"), ("big", "must be auto or GB per GPU")])
def test_serve_checks_the_gpu_split(run_cli, value: str, words: str) -> None:
    code, _, err = run_cli("serve", "--gpu-split", value)
    assert code == 2 and words in err


def test_nothing_outside_the_exl2_backend_imports_exllamav2_or_torch() -> None:
    script = (
        "import sys, codebooga.server.cli, codebooga.server.engine.loader, codebooga.merge.shared.model_format,"
        " codebooga.merge.build, codebooga.merge.exl2.cli;"
        "codebooga.server.cli.build_parser();"
        "print(sorted(m for m in ('torch', 'exllamav2', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
