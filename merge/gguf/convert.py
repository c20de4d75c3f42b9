"""HF LlamaForCausalLM folder → GGUF file, streamed in row chunks so memory stays flat for any model size.

The header (metadata, vocab, tensor table) is fully known from `config.json`, `tokenizer.model` and the weight
headers, so it is written first; tensor data then follows chunk by chunk straight from the memory-mapped checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np

from codebooga.merge.checkpoint import Checkpoint, open_checkpoint
from codebooga.merge.dtypes import FLOAT_DTYPES
from codebooga.prompts import alpaca_template

from .atomic import atomic_output
from .errors import GGUFError
from .metadata import LlamaHParams, parse_hparams, write_hparams
from .formats import OutType
from .tensors import FILE_TYPES, TensorPlan, encode, is_ignored, plan_tensors
from .vocab import load_vocab, write_vocab

CHUNK_BYTES = 64 * 1024 * 1024
_LAYER_TENSORS = (
    "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
)  # fmt: skip


def read_chat_template(path: Path) -> str:
    """The Jinja chat template to embed, verbatim (its first-line stop-string comment included)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise GGUFError(f"{path}: cannot read chat template ({error.strerror})") from None


def _check_tensors(checkpoint: Checkpoint, hparams: LlamaHParams) -> None:
    """Fail before writing anything if a LLaMA weight is missing or not a float tensor."""
    required = ["model.embed_tokens.weight", "model.norm.weight"]
    if not hparams.tie_word_embeddings:
        required.append("lm_head.weight")
    required += [f"model.layers.{i}.{part}.weight" for i in range(hparams.block_count) for part in _LAYER_TENSORS]
    missing = [name for name in required if name not in checkpoint]
    if missing:
        raise GGUFError(f"{checkpoint.folder}: checkpoint lacks {missing[0]} ({len(missing)} LLaMA tensors missing)")
    for info in checkpoint.tensors():
        if info.dtype not in FLOAT_DTYPES and not is_ignored(info.name):
            raise GGUFError(f"{info.file}: tensor {info.name} has dtype {info.dtype}; expected f32, f16 or bf16")


def _row_chunks(checkpoint: Checkpoint, plan: TensorPlan) -> Iterator[np.ndarray]:
    """float32 row blocks of about CHUNK_BYTES; q/k blocks hold whole heads, so each block permutes on its own."""
    rows = plan.shape[0]
    row_bytes = 4 * int(np.prod(plan.shape[1:], dtype=np.int64))
    step = max(1, CHUNK_BYTES // max(row_bytes, 1))
    if plan.permute_heads is not None:
        head_rows = rows // plan.permute_heads
        step = max(1, step // head_rows) * head_rows
    for start in range(0, rows, step):
        yield checkpoint.read(plan.source, start, min(rows, start + step))


def _write_data(writer: gguf.GGUFWriter, checkpoint: Checkpoint, plans: list[TensorPlan], progress: bool) -> None:
    """Append each tensor's bytes in declared order, padded to GGUF alignment exactly as `GGUFWriter` pads.

    `GGUFWriter.write_tensor_data` only takes whole tensors, so chunks go straight to the writer's open file.
    """
    from tqdm import tqdm

    (handle,) = writer.fout
    total = sum(plan.nbytes for plan in plans)
    with tqdm(total=total, desc="convert", unit="B", unit_scale=True, disable=not progress) as bar:
        writer.write_padding(handle, handle.tell())
        for plan in plans:
            for chunk in _row_chunks(checkpoint, plan):
                heads = None if plan.permute_heads is None else plan.permute_heads * len(chunk) // plan.shape[0]
                data = encode(chunk, plan.ggml_type, heads)
                data.tofile(handle)
                bar.update(data.nbytes)
            writer.write_padding(handle, plan.nbytes)


def convert(
    model_dir: Path,
    output: Path,
    outtype: OutType = OutType.F16,
    *,
    name: str | None = None,
    chat_template: str | None = None,
    progress: bool = True,
) -> Path:
    """Write `model_dir` (HF LlamaForCausalLM: safetensors or `.bin`, any float dtype) as a GGUF file.

    `chat_template` is embedded as `tokenizer.chat_template` (the shipped Alpaca template when None).
    The file appears at `output` only once complete.
    """
    template = chat_template if chat_template is not None else alpaca_template()
    with open_checkpoint(model_dir) as checkpoint:
        hparams = parse_hparams(checkpoint.config, source=str(model_dir / "config.json"))
        vocab = load_vocab(model_dir, checkpoint.config, hparams.vocab_size)
        _check_tensors(checkpoint, hparams)
        plans = plan_tensors({info.name: info.shape for info in checkpoint.tensors()}, hparams, outtype)
        with atomic_output(output) as partial:
            writer = gguf.GGUFWriter(partial, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
            writer.add_name(name or model_dir.resolve().name)
            writer.add_file_type(FILE_TYPES[outtype])
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            write_hparams(writer, hparams)
            write_vocab(writer, vocab, template)
            for plan in plans:
                writer.add_tensor_info(plan.target, plan.shape, np.dtype(np.float32), plan.nbytes, plan.ggml_type)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            _write_data(writer, checkpoint, plans, progress)
            writer.close()
    return output
