"""Running exllamav2's EXL2 converter: input checks, its command line, a resumable work folder, result checks.

The converter (`python -m exllamav2.conversion.convert_exl2`) parses `sys.argv` at import and is CUDA-only, so it
runs as a subprocess whose output is passed through as progress. It reports many problems by printing a `## ...`
line and exiting with status 0, so success is judged from its job file and the compiled folder, not its exit code.

Work folder: `<OUT_DIR>.work` next to the output. `<work>/job` is the converter's own folder (its `job_new.json`,
measurement and quantized tensors; the converter empties it when a job starts afresh, so nothing else may live
there); an interrupted run resumes from it when started again with the same input, bits, head bits and
calibration file (other settings start it afresh). The model is compiled into `<work>/compiled` and moved to
OUT_DIR only when complete, so OUT_DIR never holds a half-written model. On success the measurement is kept as
`OUT_DIR/measurement.json` (reusable for other bitrates) and the work folder is deleted.

SentencePiece-only checkpoints get a `tokenizer.json` (ExLlamaV2 needs one), and configs written by transformers 5
get their RoPE settings at the top level (exllamav2 reads them nowhere else), without touching the input folder:
the converter then reads `<work>/input`, links to the input's files plus the generated or rewritten ones.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from codebooga.merge.errors import MergeError
from codebooga.merge.exl2.legacy_config import exllamav2_rope_keys
from codebooga.merge.exl2.tokenizer_json import TOKENIZER_JSON, TOKENIZER_MODEL, needs_tokenizer_json, write_tokenizer_json
from codebooga.merge.shared.exl2_support import missing_exl2_requirement
from codebooga.merge.shared.files import UnreadableFileError, read_json_object
from codebooga.merge.shared.model_format import is_exl2_config

CONVERTER_MODULE = "exllamav2.conversion.convert_exl2"
MIN_BITS, MAX_BITS = 2.0, 8.0
HEAD_BITS = (2, 3, 4, 5, 6, 8)  # exllamav2's qparams_headoptions
JOB_FILE = "job_new.json"
CONFIG_JSON = "config.json"


class Exl2Error(MergeError):
    """Bad input for the EXL2 conversion, or a conversion that did not finish; one line."""


@dataclass(frozen=True)
class Exl2Job:
    """One conversion: HF folder → EXL2 folder at `bits` per weight (decoder) and `head_bits` (lm_head)."""

    model_dir: Path
    output_dir: Path
    bits: float
    head_bits: int = 6
    calibration: Path | None = None

    @property
    def work_dir(self) -> Path:
        return work_dir_for(self.output_dir)

    @functools.cached_property
    def input_dir(self) -> Path:
        """What the converter reads: the model folder, or a linked copy of it with what exllamav2 lacks added (a
        generated tokenizer.json, top-level RoPE keys in config.json). Decided once per job: it reads the
        folder's config.json, and the command line, the resume check and the staging all ask."""
        return self.work_dir / "input" if needs_staging(self.model_dir) else self.model_dir

    @property
    def converter_dir(self) -> Path:
        """The converter's own folder (`-o`): it empties it when a job starts afresh, so nothing else lives there."""
        return self.work_dir / "job"

    @property
    def compiled_dir(self) -> Path:
        return self.work_dir / "compiled"


def work_dir_for(output_dir: Path) -> Path:
    """`<OUT_DIR>.work`: beside the output (same disk, so the final move is a rename)."""
    return output_dir.with_name(f"{output_dir.name}.work")


def validate(job: Exl2Job) -> None:
    """Everything that can be checked without a GPU, before the slow part starts; raises `Exl2Error`."""
    if not MIN_BITS <= job.bits <= MAX_BITS:
        raise Exl2Error(f"--bits {job.bits:g}: must be between {MIN_BITS:g} and {MAX_BITS:g}")
    if job.head_bits not in HEAD_BITS:
        raise Exl2Error(f"--head-bits {job.head_bits}: must be one of {', '.join(map(str, HEAD_BITS))}")
    if not job.model_dir.is_dir():
        raise Exl2Error(f"{job.model_dir}: no such folder")
    if not (job.model_dir / "config.json").is_file():
        raise Exl2Error(f"{job.model_dir}: no config.json (expected a Hugging Face model folder)")
    if not any(job.model_dir.glob("*.safetensors")):
        hint = " (only .bin files: exllamav2 reads safetensors only)" if any(job.model_dir.glob("*.bin")) else ""
        raise Exl2Error(f"{job.model_dir}: no *.safetensors weights{hint}")
    if not (job.model_dir / TOKENIZER_JSON).is_file() and not (job.model_dir / TOKENIZER_MODEL).is_file():
        raise Exl2Error(f"{job.model_dir}: no tokenizer.json or tokenizer.model")
    if job.calibration is not None:
        if not job.calibration.is_file():
            raise Exl2Error(f"--calibration {job.calibration}: no such file")
        if job.calibration.suffix.lower() != ".parquet":
            raise Exl2Error(f"--calibration {job.calibration}: must be a .parquet file (exllamav2's format)")
    if job.output_dir.exists() and (not job.output_dir.is_dir() or any(job.output_dir.iterdir())):
        raise Exl2Error(f"{job.output_dir}: already exists and is not an empty folder; remove it or pick another")


def converter_command(job: Exl2Job, *, fresh: bool, python: str = sys.executable) -> list[str]:
    """The converter's command line; `fresh` (-nr) discards a work folder left by a run with other settings."""
    command = [
        python, "-m", CONVERTER_MODULE,
        "-i", str(job.input_dir),
        "-o", str(job.converter_dir),
        "-cf", str(job.compiled_dir),
        "-b", f"{job.bits:g}",
        "-hb", str(job.head_bits),
    ]  # fmt: skip
    if job.calibration is not None:
        command += ["-c", str(job.calibration)]
    if fresh:
        command.append("-nr")
    return command


def can_resume(job: Exl2Job) -> bool:
    """Whether the work folder holds an unfinished converter job with exactly these settings."""
    state = _read_job_file(job.converter_dir / JOB_FILE)
    expected = {
        "in_dir": str(job.input_dir),
        "compile_full": str(job.compiled_dir),
        "bits": job.bits,
        "head_bits": job.head_bits,
        "cal_dataset": None if job.calibration is None else str(job.calibration),
    }
    return bool(state) and state.get("progress") != "finished" and all(state.get(k) == v for k, v in expected.items())


def needs_staging(model_dir: Path) -> bool:
    """Whether exllamav2 needs a linked copy of the folder with a tokenizer.json or RoPE keys added."""
    return needs_tokenizer_json(model_dir) or bool(exllamav2_rope_keys(_read_config(model_dir)))


def prepare_input(job: Exl2Job) -> None:
    """`<work>/input` = links to the model's files, plus a generated tokenizer.json for SentencePiece-only models
    and a config.json with top-level RoPE keys for configs written by transformers 5. The input is not touched."""
    if job.input_dir == job.model_dir:
        return
    staged = job.input_dir
    staged.mkdir(parents=True, exist_ok=True)
    config = _read_config(job.model_dir)
    rope_keys = exllamav2_rope_keys(config)
    for source in sorted(job.model_dir.iterdir()):
        link = staged / source.name
        if source.is_file() and not link.exists() and not (rope_keys and source.name == CONFIG_JSON):
            link.symlink_to(source.resolve())
    if rope_keys:
        (staged / CONFIG_JSON).write_text(json.dumps({**config, **rope_keys}, indent=2), encoding="utf-8")
    if not (staged / TOKENIZER_JSON).is_file() and needs_tokenizer_json(job.model_dir):
        write_tokenizer_json(job.model_dir, staged / TOKENIZER_JSON)


def _read_config(model_dir: Path) -> dict[str, Any]:
    try:
        return read_json_object(model_dir / CONFIG_JSON)
    except UnreadableFileError as error:
        raise Exl2Error(str(error)) from None


def quantize_exl2(job: Exl2Job, *, python: str = sys.executable, output: BinaryIO | None = None) -> Path:
    """Validate, check for CUDA, run (or resume) the converter with progress on `output`, then publish OUT_DIR."""
    validate(job)
    missing = missing_exl2_requirement()
    if missing is not None:
        raise Exl2Error(f"quantize-exl2 needs {missing}")
    fresh = not can_resume(job)
    if fresh and job.compiled_dir.exists():
        shutil.rmtree(job.compiled_dir)
    job.converter_dir.mkdir(parents=True, exist_ok=True)
    prepare_input(job)
    last_error = run_passing_output(converter_command(job, fresh=fresh, python=python), output)
    state = _read_job_file(job.converter_dir / JOB_FILE)
    if state.get("progress") != "finished" or not _is_compiled(job.compiled_dir):
        reason = f": {last_error}" if last_error else ""
        raise Exl2Error(f"EXL2 conversion did not finish{reason} (work folder {job.work_dir}; run again to resume)")
    return _publish(job)


def run_passing_output(command: list[str], output: BinaryIO | None) -> str:
    """Run the converter, copying its output through unchanged (progress bars included); returns its last
    `## ...` error line, if any."""
    sink = output if output is not None else sys.stderr.buffer
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment)
    assert process.stdout is not None
    tail = b""
    try:
        while chunk := process.stdout.read1(65536):
            sink.write(chunk)
            sink.flush()
            tail = (tail + chunk)[-8192:]
        process.wait()
    except BaseException:
        process.terminate()
        process.wait()
        raise
    lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("##")]
    if errors:
        return errors[-1].lstrip("# ").strip()
    if process.returncode != 0:  # a traceback: its last line names the exception
        return f"converter exited with status {process.returncode}" + (f" ({lines[-1]})" if lines else "")
    return ""


def _is_compiled(folder: Path) -> bool:
    if not any(folder.glob("*.safetensors")):
        return False
    try:
        return is_exl2_config(read_json_object(folder / "config.json"))
    except UnreadableFileError:
        return False


def _publish(job: Exl2Job) -> Path:
    """Move the compiled model to OUT_DIR (plus measurement.json), then drop the work folder."""
    measurement = job.converter_dir / "measurement.json"
    if measurement.is_file():
        shutil.copy2(measurement, job.compiled_dir / "measurement.json")
    if job.output_dir.exists():
        job.output_dir.rmdir()  # validated empty
    os.replace(job.compiled_dir, job.output_dir)
    shutil.rmtree(job.work_dir)
    return job.output_dir


def _read_job_file(path: Path) -> dict[str, Any]:
    """The converter's job.json; {} when it is absent or unreadable (a fresh or broken run starts over)."""
    try:
        return read_json_object(path, missing_ok=True)
    except UnreadableFileError:
        return {}
