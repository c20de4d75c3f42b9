"""The merge as two steps: `prepare_merge` (everything cheap that can fail) and `execute_merge` (the I/O).

All validation happens in `prepare_merge`, in order of cost: the recipe, the output location, model
resolution (which may download), reading headers, and the plan. So a bad recipe fails in well under a second
and leaves nothing behind, and `--dry-run` is exactly `prepare_merge` plus a printout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codebooga.merge.checkpoint import Checkpoint, open_checkpoint
from codebooga.merge.engine import DEFAULT_CHUNK_BYTES, run_plan
from codebooga.merge.hub import resolve_model
from codebooga.merge.output import check_target, copy_side_files, staged_folder
from codebooga.merge.plan import MergePlan, TensorPlan, build_plan
from codebooga.merge.recipe import Recipe, load_recipe
from codebooga.merge.report import format_bytes, format_plan
from codebooga.merge.writer import OutputTensor, ShardedWriter, assign_shards

OUTPUT_DTYPES = ("float16", "bfloat16", "float32")


@dataclass
class PreparedMerge:
    """A validated merge, ready to run or to print. Holds both checkpoints open: call `close()`."""

    recipe: Recipe
    model1: Checkpoint
    model2: Checkpoint
    target: Path
    dtype: str
    plan: MergePlan

    @property
    def outputs(self) -> list[OutputTensor]:
        return [OutputTensor(tensor.name, tensor.shape, self.dtype) for tensor in self.plan.tensors]

    def describe(self) -> str:
        """The dry-run text: models, output, then the per-tensor table."""
        outputs = self.outputs
        shards = assign_shards(outputs, self.recipe.max_shard_size)
        size = format_bytes(sum(tensor.nbytes for tensor in outputs))
        exists = " (exists: a real run needs --force)" if self.target.exists() else ""
        header = [
            ("model 1", _describe_checkpoint(self.recipe.model_path1, self.model1)),
            ("model 2", _describe_checkpoint(self.recipe.model_path2, self.model2)),
            ("output", f"{self.target}{exists}"),
            ("writes", f"{size} of {self.dtype} in {len(shards)} shard(s) of at most {format_bytes(self.recipe.max_shard_size)}"),
        ]
        return format_plan(self.plan, header)

    def close(self) -> None:
        self.model1.close()
        self.model2.close()


def prepare_merge(
    recipe_path: str | Path,
    output: str | Path | None = None,
    dtype: str = "float16",
    force: bool = False,
    dry_run: bool = False,
) -> PreparedMerge:
    """Load and check everything; raises a `MergeError` subclass naming the first problem found."""
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {OUTPUT_DTYPES}")
    recipe = load_recipe(recipe_path)
    target = Path(output if output is not None else recipe.output_model_path).expanduser()
    force = force or dry_run  # a dry run writes nothing; it notes an existing output instead
    check_target(target, [], force)  # before resolving models, which may download ~68 GB each
    folder1 = resolve_model(recipe.model_path1)
    folder2 = resolve_model(recipe.model_path2)
    check_target(target, [folder1, folder2], force)
    model1 = open_checkpoint(folder1)
    try:
        model2 = open_checkpoint(folder2)
    except BaseException:
        model1.close()
        raise
    try:
        plan = build_plan(recipe, model1, model2)
    except BaseException:
        model1.close()
        model2.close()
        raise
    return PreparedMerge(recipe, model1, model2, target, dtype, plan)


def execute_merge(
    prepared: PreparedMerge, show_progress: bool = True, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Path:
    """Write the merged model into a staging folder and move it onto the target when complete.

    `chunk_bytes` bounds the float32 working set per buffer; results do not depend on it.
    """
    outputs = prepared.outputs
    with staged_folder(prepared.target) as staging:
        with ShardedWriter(staging, outputs, prepared.recipe.max_shard_size) as writer:
            with _ProgressBar(len(outputs), writer.total_bytes, show_progress) as progress:
                run_plan(
                    prepared.plan, prepared.model1, prepared.model2, writer, prepared.dtype, progress, chunk_bytes
                )
            writer.finish()
        copy_side_files(prepared.model1.folder, staging, prepared.dtype)
    return prepared.target


class _ProgressBar:
    """A tqdm bar over output bytes (rate and ETA) whose postfix counts tensors; silent when not a terminal."""

    def __init__(self, tensors: int, total_bytes: int, enabled: bool) -> None:
        self._tensors = tensors
        self._total = total_bytes
        self._enabled = enabled
        self._done = 0
        self._current: str | None = None

    def __enter__(self) -> _ProgressBar:
        from tqdm import tqdm

        self._bar = tqdm(
            total=self._total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="merging",
            disable=None if self._enabled else True,
            dynamic_ncols=True,
        )
        return self

    def __call__(self, tensor: TensorPlan, nbytes: int) -> None:
        if tensor.name != self._current:
            self._current = tensor.name
            self._done += 1
            self._bar.set_postfix_str(f"tensor {self._done}/{self._tensors}", refresh=False)
        self._bar.update(nbytes)

    def __exit__(self, *exc_info: object) -> None:
        self._bar.close()


def _describe_checkpoint(spec: str, checkpoint: Checkpoint) -> str:
    """E.g. `Phind/Phind-CodeLlama-34B-v2  [pytorch, 7 file(s), bfloat16]  → /cache/...snapshots/abc`."""
    files = len({info.file for info in checkpoint.tensors()})
    dtypes = "/".join(sorted({info.dtype for info in checkpoint.tensors()}))
    where = f"  → {checkpoint.folder}" if str(checkpoint.folder) != spec else ""
    return f"{spec}  [{checkpoint.format}, {files} file(s), {dtypes}]{where}"
