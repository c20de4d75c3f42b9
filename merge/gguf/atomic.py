"""Write-then-rename, so an interrupted conversion or quantization never leaves a file that looks finished."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def partial_path(target: Path) -> Path:
    """The temporary sibling a step writes to; same folder so the final rename is atomic."""
    return target.with_name(f".{target.name}.partial")


@contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to `target`, on any error delete it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    partial.unlink(missing_ok=True)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
