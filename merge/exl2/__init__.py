"""EXL2 quantization: `codebooga quantize-exl2` and the EXL2 step of `codebooga build`.

The quantizer itself is exllamav2's converter (CUDA only), run as a subprocess; this package prepares its input
(a `tokenizer.json` for SentencePiece-only checkpoints), builds its command line, keeps its resumable work folder
and checks its result. Nothing here imports exllamav2 or torch at import time.
"""
