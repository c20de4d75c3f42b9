"""Making finished files survive a crash: written data and the folder entries naming it reach the disk.

Output is written under a staging name, fsynced, then renamed into place; the rename is only durable once the
folder holding it is fsynced too. The merge's output and the server's on-disk prompt cache both finish that way.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """fsync a file or a folder by path (a folder's fsync makes the renames and removals in it durable)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
