"""The body limit's default follows the context; `--max-body-size` reads sizes the way its help says."""

from __future__ import annotations

import pytest

from codebooga.server.api.limits import MIB, RequestLimits
from codebooga.server.options import BadValue, byte_size


@pytest.mark.parametrize(("context", "expected"), [(2048, 4 * MIB), (8192, 4 * MIB), (32768, 16 * MIB)])
def test_the_default_body_limit_grows_with_the_context(context: int, expected: int) -> None:
    assert RequestLimits().body_bytes(context) == expected


def test_a_configured_body_limit_wins() -> None:
    assert RequestLimits(max_body_bytes=1000).body_bytes(32768) == 1000


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("4194304", 4 * MIB), ("512K", 512 * 1024), ("8M", 8 * MIB), ("8MiB", 8 * MIB), ("1g", 1024 * MIB)],
)
def test_sizes(text: str, size: int) -> None:
    assert byte_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "8Q", "1.5M", "M"])
def test_sizes_that_are_not(text: str) -> None:
    with pytest.raises(BadValue, match="must be a size in bytes like"):
        byte_size(text)
