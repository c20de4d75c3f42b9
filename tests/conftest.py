"""Shared fixtures: one real server on the embedded SmolLM2-135M model for the whole API suite."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_process import RunningServer, running_server  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    """The server as `make serve` runs it: embedded model, default preset, model's own chat template."""
    with running_server("--ctx-size", "2048", "--parallel", "4") as running:
        yield running


@pytest.fixture()
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `codebooga ARGS...` in-process through the real dispatcher; returns (exit code, stdout, stderr)."""
    import codebooga.server.cli

    def run(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = codebooga.server.cli.main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
