"""The `codebooga` console command.

One entry point with one subcommand per pipeline step (serve, merge, convert, quantize, quantize-exl2, build, eval). Each
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

from codebooga.merge.shared.cli_error import CliError

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "codebooga.server.serve_command",
    "codebooga.merge.cli",
    "codebooga.merge.gguf.cli",
    "codebooga.merge.exl2.cli",
    "codebooga.server.eval.command",
)


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

