"""The one exception family of the merge package.

Every problem a user can fix (a bad recipe, a missing file, incompatible parents) is raised as a `MergeError`
whose message is a single readable line naming the culprit; the CLI turns it into `codebooga: error: ...`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from codebooga.merge.shared.cli_error import CliError

T = TypeVar("T")


class MergeError(Exception):
    """A user-fixable problem; `str(error)` is one line that says what and where."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (capped), for wrapping library errors in a `MergeError`."""
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__


def as_user_errors(command: str, action: Callable[[], T]) -> T:
    """Run a CLI handler body; a `MergeError` or an I/O failure (disk full, permissions) becomes a `CliError`."""
    try:
        return action()
    except MergeError as error:
        raise CliError(str(error)) from None
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise CliError(f"{command} failed: {where}{error.strerror or error}") from None
