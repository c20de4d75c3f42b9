"""The `codebooga` console command.

One entry point with one subcommand per pipeline step (serve, merge, convert, quantize, quantize-exl2, build). Each
subcommand lives next to the code it drives and plugs in through a `register(subparsers)` function, so this
module stays a thin dispatcher and importing it never pulls in heavy optional dependencies (torch).

Subcommand handlers return an exit code. They report bad input as one readable line via `CliError`; the
dispatcher prints it as `codebooga: error: ...` and exits with status 2, never with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMAND_MODULES: tuple[str, ...] = ("server.serve_command", "merge.cli", "merge.gguf.cli", "merge.exl2.cli")


class CliError(Exception):
    """A problem the user can fix; its message is printed as a single line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codebooga",
        description="Merge, convert, quantize and serve CodeBooga-style LLaMA models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as error:
        print(f"codebooga: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codebooga: interrupted", file=sys.stderr)
        return 130

