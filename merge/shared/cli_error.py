"""The error every `codebooga` subcommand reports bad input with."""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can fix. The `codebooga` command prints its message as one line,
    `codebooga: error: ...`, and exits with status 2: never a traceback."""
