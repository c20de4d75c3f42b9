"""`--model` as a Hugging Face hub reference: which files of the repo to fetch, and the path llama.cpp or ExLlamaV2
then loads.

References: `OWNER/REPO:QUANT` (the GGUF whose quant tag matches, case-insensitive), `OWNER/REPO/path/file.gguf`,
and `OWNER/REPO` (the repo's only GGUF, or an EXL2 repo: config.json plus safetensors), each with an optional
`@REVISION` after the repo name (a branch such as LoneStriker's `4.0bpw`, a tag or a commit). A split GGUF
(`-00001-of-00003.gguf`) is fetched whole and its first part is passed on: llama.cpp opens the rest itself.

The plan (`plan_download`) is made before the port opens, so a wrong reference fails at once with one line; the
download itself (`fetch`) runs in the background load, while `/health` answers "loading".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from codebooga.merge.shared import hub

_REFERENCE = re.compile(
    rf"(?P<repo>{hub.REPO_ID})"
    r"(?:@(?P<revision>[A-Za-z0-9._/-]+?))?"
    r"(?::(?P<quant>[A-Za-z0-9_]+)|/(?P<file>[^:@]+\.gguf))?"
)
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_QUANT = re.compile(r"(?:^|[.\-_])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|F16|F32)$", re.IGNORECASE)
EXL2_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model"]


@dataclass(frozen=True)
class HubReference:
    """A parsed `--model` that names a hub repo rather than a local path."""

    repo: str
    revision: str | None = None
    quant: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        text = self.repo + (f"@{self.revision}" if self.revision else "")
        return text + (f":{self.quant}" if self.quant else f"/{self.file}" if self.file else "")


@dataclass(frozen=True)
class DownloadPlan:
    """What to fetch from `reference.repo`, and which downloaded path the backend loads."""

    reference: HubReference
    files: tuple[str, ...]
    """Exact repo paths (GGUF), or download patterns when `whole_repo` (EXL2)."""
    entry: str
    """The repo path to load: the GGUF (its first part when split), or "" for the EXL2 snapshot folder."""
    whole_repo: bool = False

    @property
    def model_id(self) -> str:
        """The id the API reports by default: the GGUF's name, or the repo's name for an EXL2 folder."""
        if self.whole_repo:
            return self.reference.repo.split("/")[1]
        return _SPLIT.sub("", PurePosixPath(self.entry).name).removesuffix(".gguf")


def parse_reference(spec: str) -> HubReference | None:
    """The hub reference `spec` spells, or None when it cannot be one (then it is a local path)."""
    match = _REFERENCE.fullmatch(spec)
    if match is None:
        return None
    return HubReference(match["repo"], match["revision"], match["quant"], match["file"])


def quant_of(filename: str) -> str | None:
    """The quant tag in a GGUF's name (`codebooga-34b.Q4_K_M.gguf` → `Q4_K_M`), upper-cased; None if there is none."""
    stem = _SPLIT.sub("", PurePosixPath(filename).name)
    match = _QUANT.search(stem.removesuffix(".gguf").removesuffix(".GGUF"))
    return match[1].upper() if match else None


def choose_files(reference: HubReference, repo_files: list[str]) -> DownloadPlan:
    """Which of the repo's files `reference` asks for; a `hub.HubError` naming what exists when nothing matches."""
    ggufs = sorted(name for name in repo_files if name.lower().endswith(".gguf"))
    if reference.file is not None:
        if reference.file not in repo_files:
            raise hub.HubError(f"{reference.repo} has no file {reference.file}; its GGUF files: {_listing(ggufs)}")
        return _gguf_plan(reference, [reference.file], repo_files)
    if reference.quant is not None:
        wanted = reference.quant.upper()
        matches = [name for name in ggufs if quant_of(name) == wanted]
        if not matches:
            raise hub.HubError(
                f"{reference.repo} has no {reference.quant} GGUF; quants there: {_listing(available_quants(ggufs))}"
            )
        return _gguf_plan(reference, matches, repo_files)
    if "config.json" in repo_files and any(name.endswith(".safetensors") for name in repo_files):
        return DownloadPlan(reference, tuple(EXL2_PATTERNS), "", whole_repo=True)
    if len({_SPLIT.sub("", name) for name in ggufs}) == 1:
        return _gguf_plan(reference, ggufs, repo_files)
    if ggufs:
        raise hub.HubError(
            f"{reference.repo} has several GGUF files: pick one with {reference.repo}:QUANT, quants there: "
            f"{_listing(available_quants(ggufs))}"
        )
    raise hub.HubError(f"{reference.repo} holds neither GGUF files nor an EXL2 model (config.json + safetensors)")


def available_quants(ggufs: list[str]) -> list[str]:
    """The distinct quant tags among a repo's GGUF files, sorted."""
    return sorted({quant for quant in map(quant_of, ggufs) if quant})


def plan_download(reference: HubReference) -> DownloadPlan:
    """List the repo (or, offline, its cached snapshot) and choose the files: fast, and fails with one line."""
    return choose_files(reference, hub.list_files(reference.repo, reference.revision))


def fetch(plan: DownloadPlan) -> Path:
    """Download the plan's files into the hub cache (resuming, with progress bars) and return the path to load."""
    reference = plan.reference
    if plan.whole_repo:
        return hub.download_snapshot(reference.repo, reference.revision, list(plan.files))
    paths = [hub.download_file(reference.repo, reference.revision, name) for name in plan.files]
    return paths[plan.files.index(plan.entry)]


def _gguf_plan(reference: HubReference, chosen: list[str], repo_files: list[str]) -> DownloadPlan:
    """A single GGUF, or every part of a split one (the first part is what llama.cpp opens)."""
    groups = {_SPLIT.sub("", name) for name in chosen}
    if len(groups) > 1:
        raise hub.HubError(f"{reference} matches several models in {reference.repo}: {_listing(sorted(chosen))}")
    first = sorted(chosen)[0]
    split = _SPLIT.search(first)
    if split is None:
        return DownloadPlan(reference, (first,), first)
    base = first[: split.start()]
    total = split[2]
    parts = [f"{base}-{index:05d}-of-{total}.gguf" for index in range(1, int(total) + 1)]
    missing = [part for part in parts if part not in repo_files]
    if missing:
        raise hub.HubError(f"{reference.repo}: split GGUF {first} lacks {_listing(missing)}")
    return DownloadPlan(reference, tuple(parts), parts[0])


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "none"
