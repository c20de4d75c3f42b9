"""`codebooga quantize-exl2`: input checks, the converter's exact command line, resumability, pass-through output,
and the one-line refusal on machines without CUDA."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from exl2_helpers import gpu_skip_reason
from codebooga.merge.exl2.convert import Exl2Error, Exl2Job, can_resume, converter_command, prepare_input, run_passing_output, validate


@pytest.fixture()
def hf_dir(llama_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the random LLaMA checkpoint (SentencePiece tokenizer only)."""
    return Path(shutil.copytree(llama_dir, tmp_path / "TinyLlama"))


def job_for(hf_dir: Path, **changes: object) -> Exl2Job:
    values = dict(model_dir=hf_dir, output_dir=hf_dir.parent / "TinyLlama-4.25bpw-exl2", bits=4.25)
    return Exl2Job(**{**values, **changes})  # type: ignore[arg-type]


def test_the_converter_command_line(hf_dir: Path) -> None:
    job = job_for(hf_dir)
    work = hf_dir.parent / "TinyLlama-4.25bpw-exl2.work"
    assert job.work_dir == work
    assert converter_command(job, fresh=False, python="python3") == [
        "python3", "-m", "exllamav2.conversion.convert_exl2",
        "-i", str(work / "input"), "-o", str(work / "job"), "-cf", str(work / "compiled"), "-b", "4.25", "-hb", "6",
    ]  # fmt: skip


def test_calibration_head_bits_and_fresh_start(hf_dir: Path) -> None:
    calibration = hf_dir / "cal.parquet"
    (hf_dir / "tokenizer.json").write_text("{}")
    config = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps({**config, "rope_theta": 1e6, "rope_parameters": None}))
    job = job_for(hf_dir, bits=6.0, head_bits=8, calibration=calibration)
    command = converter_command(job, fresh=True, python="py")
    # tokenizer.json and top-level RoPE: nothing to add, the converter reads the folder itself
    assert command[command.index("-i") + 1] == str(hf_dir)
    assert command[-7:] == ["-b", "6", "-hb", "8", "-c", str(calibration), "-nr"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"bits": 1.5}, "--bits 1.5: must be between 2 and 8"),
        ({"bits": 8.5}, "--bits 8.5: must be between 2 and 8"),
        ({"head_bits": 7}, "--head-bits 7: must be one of 2, 3, 4, 5, 6, 8"),
        ({"calibration": Path("/no/cal.parquet")}, "no such file"),
    ],
)
def test_bad_options_are_refused(hf_dir: Path, change: dict[str, object], words: str) -> None:
    with pytest.raises(Exl2Error, match=words.replace(".", r"\.")):
        validate(job_for(hf_dir, **change))


def test_calibration_must_be_parquet(hf_dir: Path) -> None:
    (hf_dir / "cal.txt").write_text("text")
    with pytest.raises(Exl2Error, match=r"must be a \.parquet file"):
        validate(job_for(hf_dir, calibration=hf_dir / "cal.txt"))


@pytest.mark.parametrize(
    ("remove", "words"),
    [("config.json", "no config.json"), ("model.safetensors", r"no \*.safetensors weights"),
     ("tokenizer.model", "no tokenizer.json or tokenizer.model")],
)  # fmt: skip
def test_incomplete_model_folders_are_refused(hf_dir: Path, remove: str, words: str) -> None:
    (hf_dir / remove).unlink()
    with pytest.raises(Exl2Error, match=words):
        validate(job_for(hf_dir))


def test_pytorch_bin_checkpoints_get_a_hint(make_checkpoint, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(make_checkpoint(seed=0, fmt="bin"), tmp_path / "bin"))
    with pytest.raises(Exl2Error, match="exllamav2 reads safetensors only"):
        validate(job_for(folder))


def test_an_existing_output_folder_is_not_overwritten(hf_dir: Path) -> None:
    job = job_for(hf_dir)
    job.output_dir.mkdir()
    validate(job)  # empty is fine
    (job.output_dir / "old.safetensors").write_bytes(b"")
    with pytest.raises(Exl2Error, match="already exists and is not an empty folder"):
        validate(job)


def test_the_converter_reads_a_linked_copy_with_a_generated_tokenizer_json(hf_dir: Path) -> None:
    before = sorted(path.name for path in hf_dir.iterdir())
    job = job_for(hf_dir)
    prepare_input(job)
    staged = job.work_dir / "input"
    assert sorted(path.name for path in hf_dir.iterdir()) == before  # the input folder is left alone
    assert sorted(path.name for path in staged.iterdir()) == sorted([*before, "tokenizer.json"])
    assert (staged / "model.safetensors").resolve() == (hf_dir / "model.safetensors").resolve()
    assert json.loads((staged / "tokenizer.json").read_text())["model"]["type"] == "BPE"


def test_resume_only_with_the_same_settings(hf_dir: Path) -> None:
    job = job_for(hf_dir)
    assert not can_resume(job)
    job.converter_dir.mkdir(parents=True)
    state = {"in_dir": str(job.input_dir), "compile_full": str(job.compiled_dir), "bits": 4.25, "head_bits": 6,
             "cal_dataset": None, "progress": "measure_quant"}  # fmt: skip
    (job.converter_dir / "job_new.json").write_text(json.dumps(state))
    assert can_resume(job)
    assert not can_resume(job_for(hf_dir, bits=5.0))
    (job.converter_dir / "job_new.json").write_text(json.dumps({**state, "progress": "finished"}))
    assert not can_resume(job)


def test_converter_output_is_passed_through_and_its_error_line_kept() -> None:
    script = "import sys; print(' -- Measuring...', flush=True); print(' ## Error: 7 is not a supported option'); sys.exit()"
    sink = io.BytesIO()
    assert run_passing_output([sys.executable, "-c", script], sink) == "Error: 7 is not a supported option"
    assert b" -- Measuring..." in sink.getvalue()
    assert run_passing_output([sys.executable, "-c", "raise SystemExit(3)"], io.BytesIO()) == (
        "converter exited with status 3"
    )
    crash = "assert False, \"Can't find /some/input\""
    assert run_passing_output([sys.executable, "-c", crash], io.BytesIO()) == (
        "converter exited with status 1 (AssertionError: Can't find /some/input)"
    )


def test_the_converter_folder_holds_nothing_it_could_wipe(hf_dir: Path) -> None:
    """The converter empties its `-o` folder when a job starts afresh: the linked input and the compiled model
    live beside it (on the first GPU run the input was inside and got deleted)."""
    job = job_for(hf_dir)
    assert job.input_dir != job.model_dir
    for kept in (job.input_dir, job.compiled_dir):
        assert not kept.is_relative_to(job.converter_dir) and kept.parent == job.work_dir


@pytest.mark.skipif(gpu_skip_reason() is None, reason="this machine can run EXL2")
def test_cli_refuses_without_cuda_in_one_line(run_cli, hf_dir: Path) -> None:
    code, out, err = run_cli("quantize-exl2", hf_dir, hf_dir.parent / "out", "--bits", "4.25")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1
    assert lines[0].startswith("codebooga: error: quantize-exl2 needs")
    assert not (hf_dir.parent / "out.work").exists()


def test_cli_reports_bad_input_in_one_line(run_cli, hf_dir: Path) -> None:
    code, _, err = run_cli("quantize-exl2", hf_dir, hf_dir.parent / "out", "--bits", "12")
    assert code == 2 and err.strip() == "codebooga: error: --bits 12: must be between 2 and 8"
