"""The `convert`, `quantize` and `build` subcommands of `codebooga`.

Only argparse wiring lives here; handlers import the conversion code (numpy, gguf, sentencepiece, llama_cpp) when
they run, so `codebooga --help` and `codebooga serve` never pay for it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from codebooga.merge.shared.cli_error import CliError

from .formats import QUANT_TYPES, OutType

BUILD_EXTRA_HINT = "pip install 'codebooga[build]'"
# Optional modules (from the `build` extra) each subcommand imports when it runs.
_NEEDS = {"convert": ("sentencepiece", "tqdm"), "quantize": ("tqdm",), "build": ("sentencepiece", "tqdm", "yaml")}


def _require_build_extra(command: str) -> None:
    """Turn a missing optional dependency into one line that says which extra to install."""
    import importlib.util

    missing = [name for name in _NEEDS[command] if importlib.util.find_spec(name) is None]
    if missing:
        raise CliError(f"`codebooga {command}` needs {', '.join(missing)}: {BUILD_EXTRA_HINT}")


def _run(command: str, action: Callable[[], None]) -> int:
    """Run a handler body, turning user errors and I/O failures (disk full, permissions) into one-line `CliError`s."""
    _require_build_extra(command)
    from codebooga.merge.errors import as_user_errors

    as_user_errors(command, action)
    return 0


def _convert(args: argparse.Namespace) -> int:
    def action() -> None:
        from .convert import convert, read_chat_template

        template = read_chat_template(args.chat_template) if args.chat_template else None
        convert(args.model_dir, args.output, OutType(args.outtype), name=args.name, chat_template=template)
        print(args.output)

    return _run("convert", action)


def _quantize(args: argparse.Namespace) -> int:
    def action() -> None:
        from .quantize import quantize

        quantize(args.input, args.output, args.type, threads=args.threads, imatrix=args.imatrix)
        print(args.output)

    return _run("quantize", action)


def _build(args: argparse.Namespace) -> int:
    def action() -> None:
        from codebooga.merge.build import build
        from codebooga.merge.recipe import recipe_file

        with recipe_file(args.recipe) as recipe:
            result = build(
                recipe, quants=args.quant, keep_f16=args.keep_f16, threads=args.threads, imatrix=args.imatrix,
                exl2_bits=args.exl2, exl2_head_bits=args.exl2_head_bits, exl2_calibration=args.exl2_calibration,
            )
        for path in result.outputs:
            print(path)

    return _run("build", action)


def build_gguf(recipe: str, quant: str) -> Path:
    """`codebooga build RECIPE --quant QUANT` as a call that returns the quantized GGUF. `codebooga eval --recipe`
    builds its variants through it, so what it scores is exactly what `build` delivers, and a build that is
    already up to date is reused rather than redone."""
    _require_build_extra("build")
    from codebooga.merge.build import build
    from codebooga.merge.errors import as_user_errors
    from codebooga.merge.recipe import recipe_file

    def action() -> Path:
        with recipe_file(recipe) as path:
            return build(path, quants=[quant]).outputs[0]

    return as_user_errors("build", action)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `convert`, `quantize` and `build` to the `codebooga` command."""
    types = ", ".join(QUANT_TYPES)

    convert = subparsers.add_parser(
        "convert",
        help="convert a Hugging Face LLaMA checkpoint to GGUF",
        description="Convert a LlamaForCausalLM folder (safetensors or .bin) to a GGUF file llama.cpp can load, "
        "with its SentencePiece vocab and the Alpaca chat template.",
    )
    convert.add_argument("model_dir", type=Path, metavar="HF_DIR", help="Hugging Face model folder")
    convert.add_argument("output", type=Path, metavar="OUT.gguf", help="GGUF file to write")
    convert.add_argument("--outtype", choices=[t.value for t in OutType], default=OutType.F16.value,
                         help="tensor type for matrices (norms stay f32); default f16")  # fmt: skip
    convert.add_argument("--name", help="general.name in the metadata (default: the folder name)")
    convert.add_argument("--chat-template", type=Path, metavar="FILE",
                         help="Jinja template to embed (default: the shipped Alpaca template)")  # fmt: skip
    convert.set_defaults(handler=_convert)

    quantize = subparsers.add_parser(
        "quantize",
        help="quantize a GGUF file with llama.cpp (Q4_K_M, Q5_K_M, ...)",
        description=f"Quantize an F32/F16/BF16 GGUF file with llama.cpp's quantizer. Types: {types}.",
    )
    quantize.add_argument("input", type=Path, metavar="IN.gguf")
    quantize.add_argument("output", type=Path, metavar="OUT.gguf")
    quantize.add_argument("--type", required=True, metavar="TYPE", help=f"one of {types}")
    _add_quantizer_options(quantize)
    quantize.set_defaults(handler=_quantize)

    build = subparsers.add_parser(
        "build",
        help="merge, convert and quantize a recipe into servable GGUF files",
        description="Run a BlockMerge Gradient recipe end to end: merge, convert to F16 GGUF, quantize to each "
        "requested type into <output_model_path>-GGUF/, with a manifest; finished steps are skipped on re-runs.",
    )
    build.add_argument("recipe", metavar="RECIPE",
                       help="recipe YAML file, or a shipped recipe's name such as codebooga-34b-v0.1")  # fmt: skip
    build.add_argument("--quant", nargs="+", default=["Q4_K_M"], metavar="TYPE",
                       help=f"quantization types to produce (default Q4_K_M); any of {types}")  # fmt: skip
    build.add_argument("--keep-f16", action="store_true", help="keep the intermediate F16 GGUF file")
    build.add_argument("--exl2", type=float, metavar="BITS",
                       help="also quantize to EXL2 at BITS per weight into <output_model_path>-<BITS>bpw-exl2/ "
                       "(needs an NVIDIA GPU and the exl2 extra)")  # fmt: skip
    build.add_argument("--exl2-head-bits", type=int, default=6, metavar="BITS", help="EXL2 output-layer bits (default 6)")
    build.add_argument("--exl2-calibration", type=Path, metavar="FILE", help="EXL2 calibration data (.parquet)")
    _add_quantizer_options(build)
    build.set_defaults(handler=_build)


def _add_quantizer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0, help="quantization threads (default: all cores)")
    parser.add_argument("--imatrix", type=Path, metavar="FILE", help="importance matrix file from llama-imatrix")
