"""The one exception family of the merge package.

Every problem a user can fix (a bad recipe, a missing file, incompatible parents) is raised as a `MergeError`
whose message is a single readable line naming the culprit; the CLI turns it into `codebooga: error: ...`.
"""

from __future__ import annotations


class MergeError(Exception):
    """A user-fixable problem; `str(error)` is one line that says what and where."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (capped), for wrapping library errors in a `MergeError`."""
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
