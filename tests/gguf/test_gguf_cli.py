"""`codebooga convert|quantize|build` through the real dispatcher: outputs, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gguf
import pytest

from codebooga.merge.gguf.formats import QUANT_TYPES

CliRunner = Callable[..., tuple[int, str, str]]


def test_convert_then_quantize(run_cli: CliRunner, llama_dir: Path, tmp_path: Path) -> None:
    f16 = tmp_path / "tiny.F16.gguf"
    code, out, _ = run_cli("convert", llama_dir, f16, "--outtype", "f16", "--name", "Tiny-v1")
    assert (code, out.strip()) == (0, str(f16))
    assert gguf.GGUFReader(f16).fields["general.name"].contents() == "Tiny-v1"
    q4 = tmp_path / "tiny.Q4_K_M.gguf"
    code, out, err = run_cli("quantize", f16, q4, "--type", "Q4_K_M", "--threads", "2")
    assert (code, out.strip()) == (0, str(q4))
    assert "quantize Q4_K_M" in err  # the progress bar
    assert gguf.GGUFReader(q4).fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q4_K_M


def test_convert_embeds_a_custom_chat_template(run_cli: CliRunner, llama_dir: Path, tmp_path: Path) -> None:
    template = tmp_path / "chatml.jinja"
    template.write_text("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
    code, _, _ = run_cli("convert", llama_dir, tmp_path / "out.gguf", "--chat-template", template)
    assert code == 0
    assert gguf.GGUFReader(tmp_path / "out.gguf").fields["tokenizer.chat_template"].contents() == template.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("quantize", "{f16}", "{tmp}/o.gguf", "--type", "Q4_K_X"),
         f"unknown quantization type 'Q4_K_X'; choose one of: {', '.join(QUANT_TYPES)}"),
        (("quantize", "{tmp}/missing.gguf", "{tmp}/o.gguf", "--type", "Q4_K_M"),
         "{tmp}/missing.gguf: cannot read input (No such file or directory)"),
        (("convert", "{tmp}/nowhere", "{tmp}/o.gguf"), "model folder not found: {tmp}/nowhere"),
        (("convert", "{tmp}", "{tmp}/o.gguf", "--chat-template", "{tmp}/none.jinja"),
         "{tmp}/none.jinja: cannot read chat template (No such file or directory)"),
        (("build", "codebooga-34b-v0.1", "--quant", "Q4_K_M", "Q7"), "unknown quantization type 'Q7'; choose one of:"),
        (("build", "{tmp}/recipe.yaml"), "recipe not found: {tmp}/recipe.yaml"),
    ],
    ids=["unknown-type", "missing-gguf", "missing-model", "missing-template", "build-unknown-type", "missing-recipe"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_code_2(
    run_cli: CliRunner, f16_gguf: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    fill = {"f16": f16_gguf, "tmp": tmp_path}
    code, out, err = run_cli(*(arg.format(**fill) for arg in args))
    assert code == 2
    assert err.startswith(f"codebooga: error: {message.format(**fill)}")
    assert err.count("\n") == 1
    assert not (tmp_path / "o.gguf").exists()


def test_cli_module_imports_nothing_heavy() -> None:
    probe = "import sys, codebooga.merge.gguf.cli; print(sorted({'numpy', 'torch', 'gguf', 'llama_cpp'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_build_end_to_end_with_progress_and_manifest(run_cli: CliRunner, make_recipe: Callable[[str], Path]) -> None:
    recipe = make_recipe("CliBooga-v0.1")
    folder = recipe.parent / "CliBooga-v0.1-GGUF"
    code, out, err = run_cli("build", recipe, "--quant", "Q4_K_M", "q5_k_m", "--threads", "2")
    assert code == 0
    assert out.split() == [str(folder / "CliBooga-v0.1.Q4_K_M.gguf"), str(folder / "CliBooga-v0.1.Q5_K_M.gguf")]
    for line in ("[1/4] merge", "[2/4] convert", "[3/4] quantize Q4_K_M", "[4/4] quantize Q5_K_M"):
        assert line in err
    assert "convert: 100%" in err and "quantize Q5_K_M: 100%" in err
    assert (folder / "manifest.json").is_file()

    code, _, err = run_cli("build", recipe, "--quant", "Q5_K_M")
    assert code == 0
    assert "[3/3] quantize Q5_K_M → CliBooga-v0.1.Q5_K_M.gguf: up to date, skipped" in err


def test_missing_build_extra_is_named(run_cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import codebooga.merge.gguf.cli

    monkeypatch.setitem(codebooga.merge.gguf.cli._NEEDS, "quantize", ("tqdm", "no_such_module_for_test"))
    code, _, err = run_cli("quantize", tmp_path / "in.gguf", tmp_path / "out.gguf", "--type", "Q4_K_M")
    assert code == 2
    assert err == "codebooga: error: `codebooga quantize` needs no_such_module_for_test: pip install 'codebooga[build]'\n"


def test_write_failure_is_one_line(run_cli: CliRunner, f16_gguf: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder should be")
    code, _, err = run_cli("quantize", f16_gguf, blocked / "out.gguf", "--type", "Q8_0")
    assert code == 2
    assert err.startswith("codebooga: error: quantize failed: ") and err.count("\n") == 1, err
