"""The chat templates shipped with codebooga (`*.jinja`).

Read through `importlib.resources`, so a checkout, an editable install and an installed wheel all find them the
same way, whatever the current directory.
"""

from __future__ import annotations

from importlib.resources import files

ALPACA_TEMPLATE = "alpaca.jinja"


def alpaca_template() -> str:
    """The Alpaca template, verbatim (its leading stop-string declaration included)."""
    return files(__name__).joinpath(ALPACA_TEMPLATE).read_text(encoding="utf-8")


TOOLS_TEMPLATE = "tools.jinja"


def tools_template() -> str:
    """The tools section added to prompts whose chat template does not describe tools itself."""
    return files(__name__).joinpath(TOOLS_TEMPLATE).read_text(encoding="utf-8")
