"""The context per sequence: `--ctx-size` as asked, never beyond the model's training context."""

from __future__ import annotations

import pytest

from codebooga.server.engine.context_size import capped_context


@pytest.mark.parametrize(
    ("asked", "trained", "served"),
    [
        (16384, 16384, 16384),  # the default on a CodeLlama-family model: all of its trained context
        (16384, 8192, 8192),  # the default on the embedded SmolLM2: capped at what it was trained for
        (2048, 8192, 2048),  # asked for less: as asked
        (0, 8192, 8192),  # 0: the model's own
        (4096, 0, 4096),  # a model that does not say: as asked
    ],
)
def test_the_context_is_capped_at_the_training_context(asked: int, trained: int, served: int) -> None:
    assert capped_context(asked, trained) == served
