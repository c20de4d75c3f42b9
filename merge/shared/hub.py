"""The Hugging Face hub calls codebooga makes, with its errors turned into one actionable line.

Everything goes through `huggingface_hub` into the standard cache (`HF_HOME` / `HF_HUB_CACHE`), so files are
shared with other tools, downloads resume from the `.incomplete` file an interrupted one left, progress shows
on huggingface_hub's own bars, `HF_TOKEN` authenticates, `HF_ENDPOINT` picks a mirror and `HF_HUB_OFFLINE=1`
uses the cache only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

REPO_ID = r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*"
"""The shape of a hub repo id (`OWNER/NAME`), shared by the merge's parents and `serve --model`."""

log = logging.getLogger("codebooga.hub")
PROGRESS_EVERY = 10.0
"""Seconds between progress lines in the log while a file downloads."""


class HubError(Exception):
    """A repo, revision or file that cannot be listed or fetched; `str(error)` is one line."""


class RepoNotFound(HubError):
    """No such repo (or a private one without a token), or no hub to ask: the name may be a mistyped local path."""


def list_files(repo_id: str, revision: str | None) -> list[str]:
    """The repo's file paths: asked of the hub, or read from the cached snapshot when `HF_HUB_OFFLINE` is set."""
    huggingface_hub = _import()
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return _cached_files(repo_id, revision)
    try:
        info = huggingface_hub.HfApi().model_info(repo_id, revision=revision)
    except Exception as error:
        errors = _errors()
        unknown = isinstance(error, errors.RepositoryNotFoundError) or not isinstance(error, errors.HfHubHTTPError)
        raise (RepoNotFound if unknown else HubError)(_describe(error, repo_id, revision)) from None
    return [sibling.rfilename for sibling in info.siblings or []]


def download_file(repo_id: str, revision: str | None, filename: str) -> Path:
    """One file into the cache (or its cached copy), resuming a partial download."""
    huggingface_hub = _import()
    try:
        with logged_progress(repo_id, filename):
            return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision))
    except Exception as error:
        raise HubError(_describe(error, repo_id, revision, filename)) from None


def download_snapshot(repo_id: str, revision: str | None, patterns: list[str]) -> Path:
    """The repo's files matching `patterns`, fetched one by one, and the snapshot folder that holds them."""
    from fnmatch import fnmatch

    names = [name for name in list_files(repo_id, revision) if any(fnmatch(name, pattern) for pattern in patterns)]
    if not names:
        raise HubError(f"{repo_id} has no files matching {', '.join(patterns)}")
    paths = [download_file(repo_id, revision, name) for name in names]
    return paths[0].parents[len(Path(names[0]).parts) - 1]


@contextmanager
def logged_progress(repo_id: str, filename: str, every: float | None = None) -> Iterator[None]:
    """Log the bytes downloaded so far every `every` seconds: huggingface_hub draws its bar only on a terminal,
    and a container's or pod's log would otherwise say nothing for the minutes a 20 GB GGUF takes."""
    blobs = cache_folder() / f"models--{repo_id.replace('/', '--')}" / "blobs"
    done = threading.Event()
    started = time.monotonic()

    def report() -> None:
        while not done.wait(PROGRESS_EVERY if every is None else every):
            size = _partial_bytes(blobs)
            if size:
                rate = size / (time.monotonic() - started) / 2**20
                log.info("downloading %s/%s: %.1f MiB so far (%.1f MiB/s)", repo_id, filename, size / 2**20, rate)

    thread = threading.Thread(target=report, name="hub-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _partial_bytes(blobs: Path) -> int:
    """Bytes in the repo's `.incomplete` blobs (huggingface_hub downloads into these, then renames them)."""
    total = 0
    for path in blobs.glob("*.incomplete"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # finished and renamed meanwhile
            pass
    return total


def cache_folder() -> Path:
    """Where huggingface_hub keeps downloads (`HF_HUB_CACHE`, by default `$HF_HOME/hub`)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def endpoint() -> str:
    """The hub huggingface_hub talks to (`HF_ENDPOINT`, by default https://huggingface.co)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _import() -> ModuleType:
    try:
        import huggingface_hub
    except ImportError:
        raise HubError("models from the hub need huggingface_hub: pip install huggingface_hub") from None
    return huggingface_hub


def _cached_files(repo_id: str, revision: str | None) -> list[str]:
    """The files of the cached snapshot for `revision` (a branch or tag through `refs/`, or a commit)."""
    repo = cache_folder() / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = repo / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        raise HubError(
            f"{repo_id}{'@' + revision if revision else ''} is not in the Hugging Face cache ({cache_folder()}) "
            "and HF_HUB_OFFLINE is set: download it once online, or unset HF_HUB_OFFLINE"
        )
    return sorted(str(path.relative_to(snapshot)) for path in snapshot.rglob("*") if not path.is_dir())


def _errors() -> ModuleType:
    from huggingface_hub import errors

    return errors


def _describe(error: Exception, repo_id: str, revision: str | None, filename: str | None = None) -> str:
    """One line for a hub failure, saying what to do about it."""
    errors = _errors()

    where = repo_id + (f"@{revision}" if revision else "")
    if isinstance(error, errors.GatedRepoError):
        return f"{where} is gated: accept its terms on the hub and set HF_TOKEN"
    if isinstance(error, errors.RepositoryNotFoundError):
        return f"no repo {repo_id} on the Hugging Face hub (private repos need HF_TOKEN)"
    if isinstance(error, errors.RevisionNotFoundError):
        return f"{repo_id} has no revision {revision}"
    if isinstance(error, errors.EntryNotFoundError) and not isinstance(error, errors.LocalEntryNotFoundError):
        return f"{where} has no file {filename}"
    if isinstance(error, errors.LocalEntryNotFoundError):
        return (
            f"{where}{'/' + filename if filename else ''} is not in the Hugging Face cache ({cache_folder()}) "
            "and the hub cannot be reached (or HF_HUB_OFFLINE is set)"
        )
    lines = str(error).strip().splitlines()
    if not isinstance(error, errors.HfHubHTTPError):
        return f"the hub at {endpoint()} cannot be reached ({lines[0][:200] if lines else type(error).__name__})"
    return f"downloading {where} failed: {lines[0][:300] if lines else type(error).__name__}"
