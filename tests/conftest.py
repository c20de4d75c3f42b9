"""Shared fixtures: one real server on the embedded SmolLM2-135M model for the whole API suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_process import RunningServer, running_server  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    """The server as `make serve` runs it: embedded model, default preset, model's own chat template."""
    with running_server("--ctx-size", "2048", "--parallel", "4") as running:
        yield running
