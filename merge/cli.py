"""`codebooga merge RECIPE.yaml`: the subcommand's arguments and handler.

Import-light on purpose: the serving path imports every subcommand module to build its parser, so numpy,
yaml, torch and tqdm are only imported inside the handler. Every `MergeError` becomes a one-line `CliError`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from codebooga.merge.shared.cli_error import CliError

DTYPES = ("float16", "bfloat16", "float32")


def register(subparsers: Any) -> None:
    """Add the `merge` subcommand to the `codebooga` parser."""
    parser = subparsers.add_parser(
        "merge",
        help="blend two models with a BlockMerge Gradient recipe",
        description=(
            "Reproduce a BlockMerge Gradient merge bit for bit, streaming tensor by tensor at constant memory. "
            "Model paths in the recipe may be local folders or Hugging Face hub ids."
        ),
    )
    parser.add_argument("recipe", metavar="RECIPE", help="recipe YAML file (model_path1, model_path2, operations, ...), "
                        "or the name of a shipped recipe such as codebooga-34b-v0.1")  # fmt: skip
    parser.add_argument("--output", type=Path, help="output folder (default: the recipe's output_model_path)")
    parser.add_argument("--dtype", choices=DTYPES, default="float16", help="output dtype (default: float16)")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the plan; write nothing")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate, then print the plan (`--dry-run`) or write the merged model."""
    missing = [name for name in ("numpy", "yaml", "tqdm") if not _importable(name)]
    if missing:
        raise CliError(f"codebooga merge needs {', '.join(missing)}: pip install 'codebooga[build]'")
    from codebooga.merge.errors import MergeError
    from codebooga.merge.recipe import recipe_file

    try:
        with recipe_file(args.recipe) as recipe:
            return _merge(recipe, args)
    except MergeError as error:
        raise CliError(str(error)) from None


def _merge(recipe: Path, args: argparse.Namespace) -> int:
    from codebooga.merge.pipeline import execute_merge, prepare_merge

    started = time.monotonic()
    prepared = prepare_merge(recipe, args.output, args.dtype, force=args.force, dry_run=args.dry_run)
    try:
        if args.dry_run:
            print(prepared.describe())
            return 0
        try:
            target = execute_merge(prepared, show_progress=True)
        except OSError as error:
            raise CliError(f"writing {prepared.target} failed: {error}") from None
    finally:
        prepared.close()
    tensors = len(prepared.plan.tensors)
    print(f"merged {tensors} tensors into {target} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True
