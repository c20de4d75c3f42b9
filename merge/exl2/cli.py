"""`codebooga quantize-exl2`: argparse wiring only; the conversion code is imported when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def _quantize_exl2(args: argparse.Namespace) -> int:
    from codebooga.merge.errors import as_user_errors
    from codebooga.merge.exl2.convert import Exl2Job, quantize_exl2

    job = Exl2Job(args.model_dir, args.output_dir, args.bits, args.head_bits, args.calibration)
    print(as_user_errors("quantize-exl2", lambda: quantize_exl2(job)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `quantize-exl2` to the `codebooga` command."""
    parser = subparsers.add_parser(
        "quantize-exl2",
        help="quantize a Hugging Face LLaMA folder to EXL2 with exllamav2 (NVIDIA GPU)",
        description="Quantize a Hugging Face model folder (safetensors) to an EXL2 folder with exllamav2's "
        "converter. Needs an NVIDIA GPU and the exl2 extra. Work state is kept in OUT_DIR.work, so an "
        "interrupted run resumes when started again with the same options.",
    )
    parser.add_argument("model_dir", type=Path, metavar="HF_DIR", help="Hugging Face model folder")
    parser.add_argument("output_dir", type=Path, metavar="OUT_DIR", help="EXL2 folder to create (must not exist)")
    parser.add_argument("--bits", type=float, required=True, help="target bits per weight, 2 to 8 (e.g. 4.25)")
    parser.add_argument("--head-bits", type=int, default=6, help="bits for the output layer: 2-6 or 8 (default 6)")
    parser.add_argument("--calibration", type=Path, metavar="FILE",
                        help="calibration data set (.parquet); default: exllamav2's built-in one")  # fmt: skip
    parser.set_defaults(handler=_quantize_exl2)
