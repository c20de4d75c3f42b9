"""How a `codebooga serve` option is declared, and how a value for it is read.

An option is one field of `ServeSettings`, made with `option(...)`: the field gives its name, type and default;
`option` adds how a value is read (`parse`), the help text and what the docs show for the default. Everything
else is derived from the field name (`ctx_size` → `--ctx-size`, `CODEBOOGA_CTX_SIZE`, config-file key
`ctx_size`), so an option lives in exactly one place and the command line, the environment, the config file and
the README table cannot drift apart.

Parsers take a value as it arrives: text from the command line or the environment, or a YAML scalar or list from
a config file. They raise `BadValue` with the end of a sentence ("must be at least 1, got 0") that the caller
prefixes with where the value came from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any

ENV_PREFIX = "CODEBOOGA_"
_OPTION = "codebooga.option"

Parse = Callable[[object], Any]


class BadValue(ValueError):
    """A value an option cannot take; `str(error)` completes "--port ..." or "CODEBOOGA_PORT ...": "must be ..."."""


@dataclass(frozen=True)
class OptionSpec:
    """What a settings field needs beyond its name, type and default to become an option."""

    parse: Parse
    help: str
    metavar: str | None = None
    shown_default: str | None = None  # for the docs, when the default value alone says too little
    flag: str | None = None  # only where the flag is not the field name (the repeatable --api-key)
    repeatable: bool = False  # the flag may be given several times; env and file take a comma-separated list


def option(
    default: Any,
    parse: Parse,
    help: str,
    *,
    metavar: str | None = None,
    shown_default: str | None = None,
    flag: str | None = None,
    repeatable: bool = False,
    secret: bool = False,
) -> Any:
    """A settings field that is also a serve option (use as the field's default in the dataclass body)."""
    spec = OptionSpec(parse, help, metavar, shown_default, flag, repeatable)
    return field(default=default, repr=not secret, metadata={_OPTION: spec})


@dataclass(frozen=True)
class DeclaredOption:
    """One option with the names derived from its field."""

    name: str
    default: Any
    spec: OptionSpec

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def config_key(self) -> str:
        return self.name

    @property
    def shown_default(self) -> str:
        """The default as the docs show it (Markdown)."""
        if self.spec.shown_default is not None:
            return self.spec.shown_default
        value = self.default
        return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def declared_options(settings_class: type) -> list[DeclaredOption]:
    """The options of a settings dataclass, in declaration order."""
    return [_declared(item) for item in fields(settings_class) if _OPTION in item.metadata]


def _declared(item: Field[Any]) -> DeclaredOption:
    return DeclaredOption(name=item.name, default=item.default, spec=item.metadata[_OPTION])


def whole_number(minimum: int) -> Parse:
    """An integer of at least `minimum`."""

    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise BadValue(f"must be a whole number, got {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise BadValue(f"must be a whole number, got {value!r}") from None
        if number < minimum:
            raise BadValue(f"must be at least {minimum}, got {number}")
        return number

    return parse


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def byte_size(value: object) -> int:
    """`4194304`, `512K`, `8M`, `8MiB` → bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:I?B)?\s*", str(value), re.IGNORECASE)
    if isinstance(value, bool) or match is None:
        raise BadValue(f"must be a size in bytes like 4194304, 512K or 8M, got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def seconds(*, positive: bool = False) -> Parse:
    """A finite, non-negative number of seconds (above zero when `positive`)."""

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise BadValue(f"must be a number of seconds, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise BadValue(f"must be a number of seconds, got {value!r}") from None
        if not math.isfinite(number):
            raise BadValue(f"must be a finite number of seconds, got {value!r}")
        if positive and number <= 0:
            raise BadValue(f"must be positive, got {number:g}")
        if number < 0:
            raise BadValue(f"must not be negative, got {number:g}")
        return number

    return parse


def text(value: object) -> str:
    """Any non-empty text (a YAML number such as `host: 8080` is taken as its text)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadValue(f"must be text, got {value!r}")
    result = str(value).strip()
    if not result:
        raise BadValue("must not be empty")
    return result


def one_of(*choices: str) -> Parse:
    """One of a fixed set of words."""

    def parse(value: object) -> str:
        if value not in choices:
            raise BadValue(f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def gb_per_gpu(value: object) -> tuple[float, ...] | None:
    """`auto` → None (fill GPUs in turn); `20,24` (or a YAML list) → GB of weights on GPU 0, 1, ..."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    parts = value if isinstance(value, list) else str(value).split(",")
    try:
        split = tuple(float(part) for part in parts)
    except (TypeError, ValueError):
        raise BadValue(f"must be auto or GB per GPU like 20,24, got {value!r}") from None
    if not split or not all(math.isfinite(size) and size > 0 for size in split):
        raise BadValue(f"needs a positive number of GB for every GPU, got {value!r}")
    return split


def key_list(value: object) -> tuple[str, ...]:
    """Keys from a repeated flag or a YAML list (each item whole), or from one comma-separated string."""
    items = value if isinstance(value, list) else str(value).split(",")
    if not all(isinstance(item, str) for item in items):
        raise BadValue(f"must be a list of text keys, got {value!r}")
    return tuple(item.strip() for item in items if item.strip())
