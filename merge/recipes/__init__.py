"""The BlockMerge Gradient recipes shipped with codebooga: one `*.yaml` file per recipe, named by the file.

Read through `importlib.resources`, so `codebooga merge codebooga-34b-v0.1` finds the recipe in a checkout, an
editable install and an installed wheel alike, whatever the current directory.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def shipped_recipes() -> dict[str, Traversable]:
    """The shipped recipes by name (the file name without `.yaml`)."""
    entries = files(__name__).iterdir()
    return {entry.name.removesuffix(".yaml"): entry for entry in entries if entry.name.endswith(".yaml")}
