"""Resolve a recipe's model path: a local folder, or a Hugging Face hub id fetched through the hub cache.

Hub models go through `huggingface_hub.snapshot_download`, so they land in (and are reused from) the standard
cache (`HF_HUB_CACHE` / `HF_HOME`), downloads resume after an interruption and show progress, and
`HF_HUB_OFFLINE=1` uses the cache only. Only config, tokenizer and one weight format are fetched: safetensors
when the repo has them, otherwise the `.bin` shards, never both (they are ~68 GB each for a 34B model).
"""

from __future__ import annotations

import re
from pathlib import Path

from codebooga.merge.errors import MergeError, first_line
from codebooga.merge.output import SIDE_FILES
from codebooga.merge.shared.hub import REPO_ID, cache_folder

_HUB_ID = re.compile(REPO_ID)
CONFIG_PATTERNS = ["config.json", *SIDE_FILES]
SAFETENSORS_PATTERNS = ["model*.safetensors", "model.safetensors.index.json"]
PYTORCH_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


class HubError(MergeError):
    """A hub model that cannot be found locally nor fetched."""


def is_hub_id(spec: str) -> bool:
    """Whether `spec` has the shape of a hub id such as `Phind/Phind-CodeLlama-34B-v2`."""
    return _HUB_ID.fullmatch(spec) is not None


def resolve_model(spec: str) -> Path:
    """A local folder for `spec`: the folder itself if it exists, else the hub snapshot (downloaded if needed)."""
    local = Path(spec).expanduser()
    if local.exists():
        return local
    if not is_hub_id(spec):
        raise HubError(f"model folder not found: {spec}")
    return _snapshot(spec)


def weight_patterns(repo_files: list[str]) -> list[str]:
    """Download patterns for one weight format: safetensors if the repo has any, else PyTorch `.bin`."""
    if any(name.endswith(".safetensors") for name in repo_files):
        return SAFETENSORS_PATTERNS
    return PYTORCH_PATTERNS


def _snapshot(repo_id: str) -> Path:
    try:
        from huggingface_hub import HfApi, constants, snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            IncompleteSnapshotError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise HubError(f"using hub id {repo_id} needs huggingface_hub: pip install 'codebooga[build]'") from None

    repo_files: list[str] | None = None
    if not constants.HF_HUB_OFFLINE:
        try:
            info = HfApi().model_info(repo_id)  # one request, no retries: fails fast when offline
            repo_files = [sibling.rfilename for sibling in info.siblings or []]
        except (RepositoryNotFoundError, GatedRepoError) as error:
            raise HubError(f"cannot access {repo_id} on the Hugging Face hub: {first_line(error)}") from None
        except Exception:  # no network or hub down: fall back to what the cache holds
            repo_files = None
    if repo_files is None:
        patterns = CONFIG_PATTERNS
    else:
        patterns = CONFIG_PATTERNS + weight_patterns(repo_files)
    try:
        folder = snapshot_download(repo_id, allow_patterns=patterns, local_files_only=repo_files is None)
    except (LocalEntryNotFoundError, IncompleteSnapshotError):
        reason = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the hub is unreachable"
        raise HubError(
            f"model {repo_id} is not a local folder and not in the Hugging Face cache "
            f"({cache_folder()}), and {reason}"
        ) from None
    except Exception as error:  # HTTP, disk full, permission errors while downloading
        raise HubError(f"downloading {repo_id} failed: {first_line(error)}") from None
    return Path(folder)

