"""`codebooga build`: recipe → merged checkpoint → F16 GGUF → one GGUF per quantization type (→ optionally EXL2).

Each step is hours of work at 34B, so the build is resumable: every finished step is recorded in
`<output_model_path>-GGUF/manifest.json` with a key over everything it consumed (recipe hash, input files,
upstream outputs, options). A re-run skips steps whose key matches and whose outputs are intact on disk; a step
that was interrupted left only a temporary file (outputs are written to a temporary name and renamed), so it has
no record and is simply redone.

With `exl2_bits`, an EXL2 step quantizes the merged folder into `<output_model_path>-<bits>bpw-exl2/` with
exllamav2 (see `merge.exl2.convert`; needs CUDA, checked before the merge starts when the step is not already
done). It is recorded in the same manifest under `exl2 <bits>bpw`, keyed on the merged files, bits, head bits,
calibration file and converter version, with a SHA-256 per output file.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codebooga.merge.exl2.convert import HEAD_BITS, MAX_BITS, MIN_BITS, Exl2Error, Exl2Job, quantize_exl2
from codebooga.merge.gguf.convert import convert
from codebooga.merge.gguf.formats import OutType, canonical_type
from codebooga.merge.gguf.manifest import Manifest, file_record, folder_records, sha256_file, sha256_json
from codebooga.merge.gguf.quantize import quantize
from codebooga.merge.hub import resolve_model
from codebooga.merge.pipeline import execute_merge, prepare_merge
from codebooga.merge.recipe import Recipe, load_recipe
from codebooga.merge.shared.exl2_support import missing_exl2_requirement
from codebooga.prompts import alpaca_template

MERGE_DTYPE = "float16"
# The pinned exllamav2 release (pyproject's exl2 extra): part of the EXL2 step's key.
EXL2_CONVERTER = "exllamav2==0.3.2"
# Bump when `convert` starts producing different bytes for the same input, so recorded F16 files are redone.
CONVERTER_VERSION = 1


@dataclass
class BuildResult:
    """The deliverables of a build, and which steps ran or were found up to date."""

    outputs: list[Path]
    manifest: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def gguf_folder(output_model_path: Path) -> Path:
    """Where GGUF files go: next to the merged folder, named like TheBloke's repos (`<name>-GGUF`)."""
    return output_model_path.with_name(f"{output_model_path.name}-GGUF")


def exl2_folder(output_model_path: Path, bits: float) -> Path:
    """`<name>-<bits>bpw-exl2`, next to the merged folder (e.g. `CodeBooga-34B-v0.1-4.25bpw-exl2`)."""
    return output_model_path.with_name(f"{output_model_path.name}-{bits:g}bpw-exl2")


def gguf_file(folder: Path, name: str, kind: str) -> Path:
    """`<name>.<QUANT>.gguf`, e.g. `CodeBooga-34B-v0.1.Q4_K_M.gguf`."""
    return folder / f"{name}.{kind}.gguf"


class _Steps:
    """Numbered one-line step announcements on stderr, between the steps' own progress bars."""

    def __init__(self, total: int, result: BuildResult) -> None:
        self.total = total
        self.index = 0
        self.result = result

    def start(self, label: str) -> float:
        self.index += 1
        print(f"[{self.index}/{self.total}] {label}", file=sys.stderr, flush=True)
        self.result.ran.append(label)
        return time.monotonic()

    def skip(self, label: str, reason: str = "up to date") -> None:
        self.index += 1
        print(f"[{self.index}/{self.total}] {label}: {reason}, skipped", file=sys.stderr, flush=True)
        self.result.skipped.append(label)


def build(
    recipe_path: Path,
    quants: Sequence[str] = ("Q4_K_M",),
    *,
    keep_f16: bool = False,
    threads: int = 0,
    imatrix: Path | None = None,
    progress: bool = True,
    exl2_bits: float | None = None,
    exl2_head_bits: int = 6,
    exl2_calibration: Path | None = None,
) -> BuildResult:
    """Run (or resume) the whole build; raises a `MergeError` subclass with one line on bad input.

    Quantization types, EXL2 settings and (for a pending EXL2 step) CUDA are checked before anything runs, so a
    typo or a missing GPU does not surface after an hour of merging.
    """
    types = list(dict.fromkeys(canonical_type(name) for name in quants))
    recipe = load_recipe(recipe_path)
    merged = Path(recipe.output_model_path).expanduser()
    folder = gguf_folder(merged)
    manifest = Manifest.load(folder / "manifest.json")
    result = BuildResult(outputs=[], manifest=manifest.path)
    exl2 = None if exl2_bits is None else Exl2Job(merged, exl2_folder(merged, exl2_bits), exl2_bits, exl2_head_bits,
                                                  exl2_calibration)  # fmt: skip
    if exl2 is not None:
        _check_exl2_step(exl2, manifest)
    steps = _Steps(2 + len(types) + (exl2 is not None), result)

    _merge_step(recipe_path, recipe, merged, manifest, steps, progress)
    f16 = gguf_file(folder, merged.name, "F16")
    template = alpaca_template()
    convert_key = sha256_json({
        "merged": manifest.step("merge")["files"], "outtype": OutType.F16.value,
        "template": sha256_json(template), "converter": CONVERTER_VERSION,
    })  # fmt: skip
    imatrix_sha = sha256_file(imatrix) if imatrix is not None else None

    def quant_key(kind: str) -> str:
        return sha256_json({"source": manifest.step("convert").get("sha256"), "type": kind, "imatrix": imatrix_sha})

    f16_known = manifest.step("convert").get("key") == convert_key
    pending = [kind for kind in types if not (f16_known and manifest.is_done(f"quantize {kind}", quant_key(kind)))]
    label = f"convert → {f16.name}"
    if not (pending or keep_f16):
        steps.skip(label, "not needed, every requested quantization is up to date")
    elif manifest.is_done("convert", convert_key):
        steps.skip(label)
    else:
        started = steps.start(label)
        convert(merged, f16, OutType.F16, name=merged.name, chat_template=template, progress=progress)
        _record_file("convert", convert_key, f16, started, manifest, progress)

    for kind in types:
        target = gguf_file(folder, merged.name, kind)
        label, key = f"quantize {kind} → {target.name}", quant_key(kind)
        if manifest.is_done(f"quantize {kind}", key):
            steps.skip(label)
        else:
            started = steps.start(label)
            quantize(f16, target, kind, threads=threads, imatrix=imatrix, progress=progress)
            _record_file(f"quantize {kind}", key, target, started, manifest, progress)
        result.outputs.append(target)

    if keep_f16:
        result.outputs.append(f16)
    else:
        f16.unlink(missing_ok=True)
    if exl2 is not None:
        _exl2_step(exl2, manifest, steps, progress)
        result.outputs.append(exl2.output_dir)
    manifest.data["outputs"] = [entry for path in result.outputs for entry in _output_entries(path, manifest)]
    manifest.save()
    return result


def _merge_step(
    recipe_path: Path, recipe: Recipe, merged: Path, manifest: Manifest, steps: _Steps, progress: bool
) -> None:
    """Merge unless the recipe, both parents' files and the merged folder are exactly as last recorded."""
    parents = [resolve_model(recipe.model_path1), resolve_model(recipe.model_path2)]
    recipe_sha = sha256_file(recipe_path)
    manifest.data.update(
        name=merged.name,
        recipe={"path": str(recipe_path), "sha256": recipe_sha},
        inputs=[{"model": spec, "files": folder_records(path)} for spec, path in zip(
            (recipe.model_path1, recipe.model_path2), parents)],
    )  # fmt: skip
    key = sha256_json({"recipe": recipe_sha, "inputs": manifest.data["inputs"], "dtype": MERGE_DTYPE})
    label = f"merge → {merged}"
    if manifest.is_done("merge", key):
        steps.skip(label)
        return
    started = steps.start(label)
    prepared = prepare_merge(recipe_path, dtype=MERGE_DTYPE, force=True)
    try:
        execute_merge(prepared, show_progress=progress)
    finally:
        prepared.close()
    manifest.record("merge", key=key, files=folder_records(merged), seconds=_since(started))


def _record_file(step: str, key: str, path: Path, started: float, manifest: Manifest, progress: bool) -> None:
    """Hash a step's single output file and record the finished step."""
    digest = sha256_file(path, progress)
    manifest.record(step, key=key, sha256=digest, files=[file_record(path, digest)], seconds=_since(started))


def _output_entries(path: Path, manifest: Manifest) -> list[dict[str, object]]:
    """The user-facing list: name, size and SHA-256 of every deliverable file (a folder's files as
    `folder/file`)."""
    names = {str(path): path.name}
    if path.is_dir():
        names = {str(item): f"{path.name}/{item.name}" for item in sorted(path.iterdir()) if item.is_file()}
    records = {
        record["path"]: record
        for step in manifest.data["steps"].values()
        for record in step.get("files", [])
        if "sha256" in record
    }
    missing = [name for name in names if name not in records]
    if missing:
        raise AssertionError(f"{missing[0]} has no manifest record")
    return [{"file": name, "size": records[key]["size"], "sha256": records[key]["sha256"]} for key, name in names.items()]


def _exl2_key(job: Exl2Job, manifest: Manifest) -> str:
    calibration = sha256_file(job.calibration) if job.calibration is not None else None
    return sha256_json({
        "merged": manifest.step("merge").get("files"), "bits": job.bits, "head_bits": job.head_bits,
        "calibration": calibration, "converter": EXL2_CONVERTER,
    })  # fmt: skip


def _exl2_step_name(job: Exl2Job) -> str:
    return f"exl2 {job.bits:g}bpw"


def _check_exl2_step(job: Exl2Job, manifest: Manifest) -> None:
    """Before anything runs: valid EXL2 options, and CUDA + exllamav2 unless the step is already done."""
    if not MIN_BITS <= job.bits <= MAX_BITS:
        raise Exl2Error(f"--exl2 {job.bits:g}: bits per weight must be between {MIN_BITS:g} and {MAX_BITS:g}")
    if job.head_bits not in HEAD_BITS:
        raise Exl2Error(f"--exl2-head-bits {job.head_bits}: must be one of {', '.join(map(str, HEAD_BITS))}")
    if job.calibration is not None and not job.calibration.is_file():
        raise Exl2Error(f"--exl2-calibration {job.calibration}: no such file")
    if manifest.is_done(_exl2_step_name(job), _exl2_key(job, manifest)):
        return
    missing = missing_exl2_requirement()
    if missing is not None:
        raise Exl2Error(f"--exl2: EXL2 quantization needs {missing}")


def _exl2_step(job: Exl2Job, manifest: Manifest, steps: _Steps, progress: bool) -> None:
    """Quantize the merged folder to EXL2 unless recorded up to date; a stale output folder is replaced."""
    name, key = _exl2_step_name(job), _exl2_key(job, manifest)
    label = f"quantize EXL2 {job.bits:g}bpw → {job.output_dir.name}"
    if manifest.is_done(name, key):
        steps.skip(label)
        return
    started = steps.start(label)
    if job.output_dir.exists():
        shutil.rmtree(job.output_dir)
    quantize_exl2(job)
    files = [file_record(path, sha256_file(path, progress)) for path in sorted(job.output_dir.iterdir()) if path.is_file()]
    manifest.record(name, key=key, files=files, seconds=_since(started))


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
