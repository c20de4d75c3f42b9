"""How long each sequence's context is: what `--ctx-size` asks, capped by what the model was trained for."""

from __future__ import annotations

import logging

log = logging.getLogger("codebooga.engine")


def capped_context(asked: int, trained: int) -> int:
    """The context per sequence: what was asked (0: the model's own), never beyond the training context, past
    which RoPE positions are untrained, answers degrade and the KV cache only grows. A model that does not say
    (0) is taken at the asked value."""
    if not trained:
        return asked
    if asked > trained:
        log.warning("--ctx-size %d is beyond the model's training context; using %d", asked, trained)
    return min(asked, trained) if asked else trained
