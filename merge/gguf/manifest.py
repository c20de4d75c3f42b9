"""The build manifest: what each step consumed and produced, so a re-run can tell finished steps from stale ones.

A step is "done" when its recorded key (a hash of everything it depends on) equals the key computed now and its
recorded output files are still on disk with the same size and modification time. Outputs that users download
and share (the GGUF files) also carry a SHA-256 so they can be verified anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codebooga.merge.shared.files import UnreadableFileError, read_json_object

from .atomic import atomic_output

MANIFEST_FORMAT = 1
_HASH_BLOCK = 16 * 1024 * 1024


def sha256_file(path: Path, progress: bool = False) -> str:
    """Hex SHA-256 of a file, read in blocks (with a byte progress bar for multi-GB files)."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    with path.open("rb") as handle, tqdm(
        total=path.stat().st_size, desc=f"sha256 {path.name}", unit="B", unit_scale=True, disable=not progress
    ) as bar:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """A stable hash of a JSON-able value: the key that says whether a step's inputs changed."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def file_record(path: Path, sha256: str | None = None) -> dict[str, Any]:
    """Path, size and mtime (and optionally SHA-256) of a file as stored in the manifest."""
    stat = path.stat()
    record: dict[str, Any] = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if sha256 is not None:
        record["sha256"] = sha256
    return record


def folder_records(folder: Path) -> list[dict[str, Any]]:
    """Records for every visible file directly in `folder` (a model folder), sorted by name."""
    return [file_record(path) for path in sorted(folder.iterdir()) if path.is_file() and not path.name.startswith(".")]


def unchanged(record: dict[str, Any]) -> bool:
    """Whether the file a record describes is still there, same size, same mtime."""
    try:
        stat = os.stat(record["path"])
    except (OSError, KeyError):
        return False
    return stat.st_size == record.get("size") and stat.st_mtime_ns == record.get("mtime_ns")


@dataclass
class Manifest:
    """`<output>-GGUF/manifest.json`, rewritten atomically after every step so a crash never corrupts it."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """The existing manifest, or an empty one if it is missing, unreadable or from another format."""
        try:
            data = read_json_object(path, missing_ok=True)
        except UnreadableFileError:
            data = {}
        if data.get("format") != MANIFEST_FORMAT:
            data = {}
        data.setdefault("steps", {})
        data["format"] = MANIFEST_FORMAT
        return cls(path, data)

    def step(self, name: str) -> dict[str, Any]:
        """The recorded entry of a step (empty if it never finished)."""
        return self.data["steps"].get(name, {})

    def is_done(self, name: str, key: str) -> bool:
        """Same key as recorded and every recorded output unchanged on disk."""
        record = self.step(name)
        outputs = record.get("files", [])
        return record.get("key") == key and bool(outputs) and all(unchanged(item) for item in outputs)

    def record(self, name: str, **values: Any) -> None:
        """Mark a step finished with its key and outputs, and persist at once."""
        self.data["steps"][name] = values
        self.save()

    def save(self) -> None:
        with atomic_output(self.path) as partial:
            partial.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
