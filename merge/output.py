"""The output folder's life cycle: checks before work, a staging folder during it, an atomic rename after.

An interrupted or failed merge must never leave a folder that looks like a finished model, so everything is
written into a hidden sibling folder (`.NAME.incomplete-XXXX`) that is flushed to disk (fsync) and renamed
onto the target only when complete, and removed on any error or Ctrl-C. Config and tokenizer files come from model 1.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codebooga.merge.errors import MergeError
from codebooga.merge.shared.durable import fsync_path
from codebooga.merge.shared.files import read_json_object

SIDE_FILES = (
    "generation_config.json",
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)


class OutputError(MergeError):
    """The output location cannot be used."""


def check_target(target: Path, inputs: list[Path], force: bool) -> None:
    """Refuse an existing output without `force`, and any output that overlaps an input model folder."""
    resolved = target.resolve()
    for folder in inputs:
        source = folder.resolve()
        if resolved == source or resolved in source.parents or source in resolved.parents:
            raise OutputError(f"output {target} overlaps input model folder {folder}")
    if target.exists() and not force:
        raise OutputError(f"output {target} already exists (use --force to replace it)")
    if target.exists() and not target.is_dir():
        raise OutputError(f"output {target} exists and is not a folder")


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder next to `target`; on success it replaces `target`, on error it is deleted."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.incomplete-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _publish(staging, target)


def _publish(staging: Path, target: Path) -> None:
    """Make the staged files durable, then rename: a crash can lose the output, never half-write it."""
    for path in staging.iterdir():
        fsync_path(path)
    fsync_path(staging)
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced-", dir=target.parent))
        retired.rmdir()
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(target)
    fsync_path(target.parent)


def copy_side_files(model1: Path, destination: Path, dtype: str) -> list[str]:
    """Copy config (with torch_dtype set to `dtype`), generation config and tokenizer files from model 1."""
    config = read_json_object(model1 / "config.json")
    config["torch_dtype"] = dtype
    if "dtype" in config:
        config["dtype"] = dtype
    (destination / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    copied = ["config.json"]
    for name in SIDE_FILES:
        if (model1 / name).is_file():
            shutil.copyfile(model1 / name, destination / name)
            copied.append(name)
    return copied
