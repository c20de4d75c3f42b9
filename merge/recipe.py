"""BlockMerge Gradient recipes: parse the original YAML format into a validated `Recipe`.

The format is the one the CodeBooga-34B-v0.1 model card publishes; see /docs/merge.md. Validation is strict
(unknown keys, empty gradients and non-numeric values are errors) because a typo such as `gradient_value`
would otherwise silently produce a different model after an hour of work.

The recipes in merge/recipes/ ship with codebooga: `recipe_file` finds one by name (`codebooga-34b-v0.1`) in any
installation, or takes a path as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import as_file
from pathlib import Path
from typing import Any

import yaml

from codebooga.merge.errors import MergeError
from codebooga.merge.recipes import shipped_recipes

DEFAULT_MAX_SHARD_SIZE = "2000MiB"
_TOP_LEVEL_KEYS = {"model_path1", "model_path2", "output_model_path", "operations", "max_shard_size"}
_OPERATION_KEYS = {"operation", "filter", "gradient_values", "layer_only", "no_layers"}
_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}


class RecipeError(MergeError):
    """A recipe that cannot be used; the message names the recipe file and the offending key."""


@dataclass(frozen=True)
class Operation:
    """One recipe step: blend the tensors it selects with model 2, along a gradient of model 2's shares."""

    label: str
    filter: str | None
    gradient_values: tuple[float, ...]
    layer_only: bool = False
    no_layers: bool = False

    def selects(self, name: str) -> bool:
        """Whether this operation's layer switches and substring filter keep tensor `name`."""
        if self.layer_only and "layer" not in name:
            return False
        if self.no_layers and "layer" in name:
            return False
        return self.filter is None or self.filter in name


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe. Model paths are kept as written: a local folder or a Hugging Face hub id."""

    model_path1: str
    model_path2: str
    output_model_path: str
    operations: tuple[Operation, ...]
    max_shard_size: int


@contextmanager
def recipe_file(recipe: str | Path) -> Iterator[Path]:
    """The recipe file for a path as given or, when no such file exists, for a shipped recipe's name."""
    given = Path(recipe).expanduser()
    if given.exists():
        yield given
        return
    shipped = shipped_recipes()
    resource = shipped.get(str(recipe).removesuffix(".yaml"))
    if resource is None:
        names = ", ".join(sorted(shipped))
        raise RecipeError(f"recipe not found: {recipe} (neither a file nor a shipped recipe: {names})")
    with as_file(resource) as path:
        yield path


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; raises `RecipeError` with one line naming the problem."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"recipe not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"cannot read recipe {path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RecipeError(f"recipe {path} is not valid YAML{where}") from None
    return parse_recipe(document, str(path))


def parse_recipe(document: Any, source: str = "recipe") -> Recipe:
    """Validate an already-parsed YAML document; `source` names it in error messages."""
    if not isinstance(document, dict):
        raise RecipeError(f"{source}: expected a mapping with model_path1, model_path2, operations")
    unknown = sorted(set(map(str, document)) - _TOP_LEVEL_KEYS)
    if unknown:
        raise RecipeError(f"{source}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(_TOP_LEVEL_KEYS))})")
    paths = {key: _required_string(document, key, source) for key in ("model_path1", "model_path2")}
    output = _required_string(document, "output_model_path", source)
    operations = document.get("operations")
    if not isinstance(operations, list) or not operations:
        raise RecipeError(f"{source}: 'operations' must be a non-empty list")
    return Recipe(
        model_path1=paths["model_path1"],
        model_path2=paths["model_path2"],
        output_model_path=output,
        operations=tuple(_parse_operation(entry, index, source) for index, entry in enumerate(operations)),
        max_shard_size=parse_size(document.get("max_shard_size", DEFAULT_MAX_SHARD_SIZE), source),
    )


def parse_size(value: Any, source: str = "recipe") -> int:
    """Bytes in a size such as "2000MiB", "10GB" or 4096 (KB/MB/GB are decimal, KiB/MiB/GiB binary)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _SIZE_UNITS or float(match.group(1)) <= 0:
        raise RecipeError(f"{source}: max_shard_size '{value}' is not a size such as \"2000MiB\" or \"5GB\"")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _required_string(document: dict[str, Any], key: str, source: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(f"{source}: '{key}' is missing or not a string")
    return value.strip()


def _parse_operation(entry: Any, index: int, source: str) -> Operation:
    where = f"{source}: operation {index + 1}"
    if not isinstance(entry, dict):
        raise RecipeError(f"{where} must be a mapping with 'gradient_values'")
    unknown = sorted(set(map(str, entry)) - _OPERATION_KEYS)
    if unknown:
        raise RecipeError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(_OPERATION_KEYS))})")
    label = entry.get("operation", f"operation {index + 1}")
    if not isinstance(label, str):
        raise RecipeError(f"{where}: 'operation' must be a string label")
    where = f"{source}: operation '{label}'"
    name_filter = entry.get("filter")
    if name_filter is not None and (not isinstance(name_filter, str) or not name_filter):
        raise RecipeError(f"{where}: 'filter' must be a non-empty string")
    values = entry.get("gradient_values")
    if not isinstance(values, list) or not values:
        raise RecipeError(f"{where}: 'gradient_values' must be a non-empty list of numbers")
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        raise RecipeError(f"{where}: 'gradient_values' must contain only numbers, got {values}")
    flags = {}
    for flag in ("layer_only", "no_layers"):
        flags[flag] = entry.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise RecipeError(f"{where}: '{flag}' must be true or false")
    if flags["layer_only"] and flags["no_layers"]:
        raise RecipeError(f"{where}: 'layer_only' and 'no_layers' together select nothing")
    return Operation(
        label=label,
        filter=name_filter,
        gradient_values=tuple(float(value) for value in values),
        **flags,
    )
