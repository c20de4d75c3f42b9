"""The prompt cache on disk (`--cache-dir`): its states written when the server stops and read back when it
starts, so that a restart keeps warm caches.

A state only means something to the model and KV layout that produced it, and llama.cpp loads another model's
state of the same shape without complaint. So the files live in a subfolder named by a fingerprint of the model
file (resolved path, size, modification time) and of the settings that shape a sequence's KV (`layout`: context
per sequence, K and V types, flash attention, which decides V's layout). Each state is a file of its own: a
magic line, token count and state size, the tokens (int32), the state; written under a temporary name, fsynced
and renamed, so a stop cut short leaves whole files or none. A file that does not read back is skipped and
removed with a warning, never an error: the cache only saves time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from codebooga.merge.shared.durable import fsync_path
from codebooga.server.engine.llama_cpp.prompt_cache import Buffer, CachedPrompt, new_buffer

log = logging.getLogger("codebooga.prompt_cache")

MAGIC = b"codebooga prompt state 1\n"
_SIZES = struct.Struct("<QQ")  # token count, state bytes
SUFFIX = ".state"


class CacheDirError(Exception):
    """The cache folder cannot be created or written; the message names it and the reason."""


def cache_folder(root: Path, model_path: Path, layout: str) -> Path:
    """The subfolder of `root` for this model file and KV layout, created if missing."""
    stat = model_path.stat()
    key = f"{model_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{layout}"
    folder = root / hashlib.sha256(key.encode()).hexdigest()[:16]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".writable"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise CacheDirError(f"--cache-dir {root}: cannot write there ({error.strerror or error})") from error
    return folder


def write_states(folder: Path, entries: Sequence[CachedPrompt]) -> int:
    """Replace the folder's states with `entries` (least recently used first: the file names keep that order);
    returns how many were written. A state that cannot be written is left out with a warning."""
    written: set[Path] = set()
    for order, entry in enumerate(entries):
        path = folder / f"{order:06d}{SUFFIX}"
        staged = folder / f".{path.name}.partial"
        try:
            with open(staged, "wb") as file, memoryview(entry.buffer) as state:
                file.write(MAGIC)
                file.write(_SIZES.pack(len(entry.tokens), entry.size))
                file.write(entry.tokens.astype("<i4").tobytes())
                file.write(state[: entry.size])
                file.flush()
                os.fsync(file.fileno())
            os.replace(staged, path)
        except OSError as error:
            log.warning("prompt cache: could not write %s (%s); left out", path, error.strerror or error)
            staged.unlink(missing_ok=True)
            continue
        written.add(path)
    for stale in folder.glob(f"*{SUFFIX}"):
        if stale not in written:
            stale.unlink(missing_ok=True)
    fsync_path(folder)
    return len(written)


def read_states(folder: Path, budget_bytes: int) -> Iterator[tuple[np.ndarray, Buffer, int]]:
    """(tokens, buffer, state size) of the folder's states, least recently used first: the most recent ones
    whose sizes fit `budget_bytes`, so that no state is read only to be evicted."""
    chosen: list[tuple[Path, int, int]] = []
    total = 0
    for path in sorted(folder.glob(f"*{SUFFIX}"), reverse=True):
        sizes = _read_header(path)
        if sizes is None:
            continue
        tokens, size = sizes
        if total + size > budget_bytes:
            break
        total += size
        chosen.append((path, tokens, size))
    for path, tokens, size in reversed(chosen):
        state = _read_state(path, tokens, size)
        if state is not None:
            yield state


def _read_header(path: Path) -> tuple[int, int] | None:
    try:
        with open(path, "rb") as file:
            magic = file.read(len(MAGIC))
            sizes = file.read(_SIZES.size)
        if magic != MAGIC or len(sizes) != _SIZES.size:
            raise ValueError("not a codebooga prompt state")
        tokens, size = _SIZES.unpack(sizes)
        if path.stat().st_size != len(MAGIC) + _SIZES.size + 4 * tokens + size or not tokens or not size:
            raise ValueError("truncated")
        return tokens, size
    except (OSError, ValueError) as error:
        _discard(path, error)
        return None


def _read_state(path: Path, tokens: int, size: int) -> tuple[np.ndarray, Buffer, int] | None:
    try:
        with open(path, "rb") as file:
            file.seek(len(MAGIC) + _SIZES.size)
            token_array = np.frombuffer(file.read(4 * tokens), dtype="<i4").astype(np.int32)
            buffer = new_buffer(size)
            with memoryview(buffer) as view:
                if file.readinto(view) != size:
                    raise ValueError("truncated")
        return token_array, buffer, size
    except (OSError, ValueError) as error:
        _discard(path, error)
        return None


def _discard(path: Path, error: Exception) -> None:
    log.warning("prompt cache: skipping %s (%s)", path, error)
    path.unlink(missing_ok=True)
