"""The sampling presets shipped with codebooga: one `*.yaml` file per preset, named by the file.

Read through `importlib.resources`, so a checkout, an editable install and an installed wheel all find them the
same way, whatever the current directory.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def preset_folder() -> Traversable:
    """The folder holding the shipped preset files."""
    return files(__name__)
