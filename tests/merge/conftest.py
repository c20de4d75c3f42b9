"""Fixtures for the merge tests: generated parents (see `parents.py`) and an in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.merge.parents import ModelSpec, write_model


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[ModelSpec], Path]:
    """Generate (once per session) and return the folder of a parent described by a `ModelSpec`."""
    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("parents")

    def make(spec: ModelSpec) -> Path:
        key = repr(spec)
        if key not in cache:
            cache[key] = write_model(root / f"model-{len(cache)}", spec)
        return cache[key]

    return make
