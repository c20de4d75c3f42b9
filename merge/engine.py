"""Execute a merge plan: one tensor at a time, in row chunks, with the original script's float32 arithmetic.

Bit-exactness argument: every output element goes through the same operations as in the original script,
which loaded both models in float32 and ran `t1 * (1 - r) + t2 * r` once per operation with torch. Widening
float16/bfloat16 to float32 is exact; torch rounds the Python scalar weight to float32 before multiplying; the
two products and the sum are each rounded to float32; the final cast rounds to nearest even. Doing this per row
chunk instead of per tensor changes nothing, because no element depends on another. numpy 2 keeps float32
arithmetic only when the scalars are float32 (a float64 scalar would promote), hence `np.float32` weights.

Chunks are small (a few MiB) so the working set stays in CPU cache and memory stays constant; worker threads
compute chunks while the calling thread writes them, in order, so the output bytes do not depend on timing.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from codebooga.merge.checkpoint import Checkpoint
from codebooga.merge.dtypes import finish_torch_import, narrow_from_float32, start_torch_import
from codebooga.merge.plan import MergePlan, TensorPlan
from codebooga.merge.writer import ShardedWriter

DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024
DEFAULT_THREADS = min(4, os.cpu_count() or 1)

Progress = Callable[[TensorPlan, int], None]
"""Called after each chunk with the tensor and the number of output bytes just written."""


def run_plan(
    plan: MergePlan,
    model1: Checkpoint,
    model2: Checkpoint,
    writer: ShardedWriter,
    dtype: str,
    progress: Progress | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    threads: int = DEFAULT_THREADS,
) -> None:
    """Compute every planned tensor and hand it to `writer`, chunk by chunk, in plan order.

    `threads` workers compute chunks ahead (numpy releases the GIL in its loops) while this thread writes
    them in order; at most `2 * threads` finished chunks wait, so memory stays bounded.
    """
    start_torch_import()
    compute = _ChunkComputer(model1, model2, dtype, chunk_bytes // 4)
    work = ((tensor, start, stop) for tensor in plan.tensors for start, stop in row_chunks(tensor, chunk_bytes // 4))
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="merge") as pool:
        pending: deque[tuple[TensorPlan, Future[np.ndarray]]] = deque()
        try:
            for tensor, start, stop in work:
                pending.append((tensor, pool.submit(compute, tensor, start, stop)))
                if len(pending) > 2 * threads:
                    _write_next(pending, writer, progress)
            while pending:
                _write_next(pending, writer, progress)
        finally:
            for _, future in pending:
                future.cancel()
            finish_torch_import()


def row_chunks(tensor: TensorPlan, chunk_elements: int) -> Iterator[tuple[int, int]]:
    """Row ranges covering the tensor, each of at most `chunk_elements` elements (at least one row)."""
    row_elements = 1
    for size in tensor.shape[1:]:
        row_elements *= size
    step = max(1, chunk_elements // max(1, row_elements))
    if tensor.rows == 0:
        yield 0, 0
    for start in range(0, tensor.rows, step):
        yield start, min(start + step, tensor.rows)


def _write_next(
    pending: deque[tuple[TensorPlan, Future[np.ndarray]]], writer: ShardedWriter, progress: Progress | None
) -> None:
    tensor, future = pending.popleft()
    chunk = future.result()
    writer.write(tensor.name, chunk)
    if progress is not None:
        progress(tensor, chunk.nbytes)


class _ChunkComputer:
    """Turns (tensor, row range) into output bytes; safe to call from several threads at once."""

    def __init__(self, model1: Checkpoint, model2: Checkpoint, dtype: str, chunk_elements: int) -> None:
        self._model1 = model1
        self._model2 = model2
        self._dtype = dtype
        self._chunk_elements = chunk_elements
        self._local = threading.local()

    def __call__(self, tensor: TensorPlan, start: int, stop: int) -> np.ndarray:
        if not tensor.blends and tensor.source_dtype == self._dtype:
            return self._model1.read_raw(tensor.name, start, stop)
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = _Buffers(self._chunk_elements)
        values = _blend_rows(tensor, self._model1, self._model2, start, stop, buffers)
        # The buffers are reused for this thread's next chunk, so float32 output must leave them.
        return values.copy() if self._dtype == "float32" else narrow_from_float32(values, self._dtype)


def _blend_rows(
    tensor: TensorPlan, model1: Checkpoint, model2: Checkpoint, start: int, stop: int, buffers: _Buffers
) -> np.ndarray:
    """Rows [start, stop) of the output in float32: model 1's rows with every blend applied in order."""
    current = model1.read(tensor.name, start, stop, out=buffers.view(0, tensor, stop - start))
    shared = max(0, min(stop, tensor.shared_rows) - start)
    if tensor.blends and shared:
        other = model2.read(tensor.name, start, start + shared, out=buffers.view(1, tensor, shared))
        blended = current[:shared]
        scratch = buffers.view(2, tensor, shared)
        for blend in tensor.blends:
            np.multiply(blended, blend.model1_weight, out=blended)
            np.multiply(other, blend.model2_weight, out=scratch)
            np.add(blended, scratch, out=blended)
    return current


class _Buffers:
    """Three reusable float32 work areas (model 1 rows, model 2 rows, scratch), grown only for huge rows."""

    def __init__(self, elements: int) -> None:
        self._areas = [np.empty(max(1, elements), dtype=np.float32) for _ in range(3)]

    def view(self, area: int, tensor: TensorPlan, rows: int) -> np.ndarray:
        shape = (rows, *tensor.shape[1:]) if tensor.shape else ()
        count = int(np.prod(shape, dtype=np.int64))
        if count > self._areas[area].size:
            self._areas[area] = np.empty(count, dtype=np.float32)
        return self._areas[area][:count].reshape(shape)
