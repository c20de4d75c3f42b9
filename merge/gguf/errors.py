"""The exception for everything in `merge.gguf` a user can fix.

It is a `MergeError`, so `codebooga build` and the CLI handle conversion, vocab and quantization problems the same
way as merge problems: one line naming the file or value at fault.
"""

from __future__ import annotations

from codebooga.merge.errors import MergeError


class GGUFError(MergeError):
    """Bad input for convert/quantize (unreadable file, unsupported config, unknown type); one line."""
