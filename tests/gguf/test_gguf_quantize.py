"""`quantize` through llama.cpp's own quantizer: types, importance matrices and one-line errors."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from codebooga.merge.gguf.errors import GGUFError
from codebooga.merge.gguf.formats import QUANT_TYPES
from codebooga.merge.gguf.quantize import quantize


def file_type(path: Path) -> int:
    return gguf.GGUFReader(path).fields["general.file_type"].contents()


@pytest.mark.parametrize(
    ("name", "ftype", "main_type"),
    [
        ("Q4_K_M", gguf.LlamaFileType.MOSTLY_Q4_K_M, "Q4_K"),
        ("q5_k_m", gguf.LlamaFileType.MOSTLY_Q5_K_M, "Q5_K"),
        ("Q6_K", gguf.LlamaFileType.MOSTLY_Q6_K, "Q6_K"),
        ("Q3_K", gguf.LlamaFileType.MOSTLY_Q3_K_M, "Q3_K"),
        ("Q8_0", gguf.LlamaFileType.MOSTLY_Q8_0, "Q8_0"),
    ],
)
def test_k_quants_apply_to_256_wide_rows(f16_gguf: Path, tmp_path: Path, name: str, ftype: int, main_type: str) -> None:
    output = quantize(f16_gguf, tmp_path / "out.gguf", name, threads=2, progress=False)
    assert file_type(output) == ftype
    types = {tensor.name: tensor.tensor_type.name for tensor in gguf.GGUFReader(output).tensors}
    assert types["blk.0.attn_q.weight"] == main_type
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert output.stat().st_size < f16_gguf.stat().st_size
    assert not list(tmp_path.glob(".*partial"))


def test_unknown_type_lists_the_valid_ones(f16_gguf: Path, tmp_path: Path) -> None:
    with pytest.raises(GGUFError) as info:
        quantize(f16_gguf, tmp_path / "out.gguf", "Q4_K_X", progress=False)
    assert str(info.value) == f"unknown quantization type 'Q4_K_X'; choose one of: {', '.join(QUANT_TYPES)}"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read input (No such file or directory)"), (b"not a model", "not a GGUF file"),
     (b"GGUF" + bytes(60), "quantization to Q4_K_M failed: bad GGUF version: 0")],
    ids=["missing", "not-gguf", "corrupt"],
)  # fmt: skip
def test_unreadable_inputs_name_the_file_and_write_nothing(tmp_path: Path, content: bytes | None, message: str) -> None:
    source = tmp_path / "in.gguf"
    if content is not None:
        source.write_bytes(content)
    with pytest.raises(GGUFError) as info:
        quantize(source, tmp_path / "out" / "out.gguf", "Q4_K_M", progress=False)
    assert str(info.value) == f"{source}: {message}"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def write_imatrix(f16_gguf: Path, path: Path, scale_first_columns: bool) -> Path:
    """An importance matrix in llama-imatrix's GGUF layout (`<tensor>.in_sum2` + `<tensor>.counts`)."""
    writer = gguf.GGUFWriter(path, "imatrix")
    writer.add_array("imatrix.datasets", ["synthetic"])
    writer.add_uint32("imatrix.chunk_count", 1)
    writer.add_uint32("imatrix.chunk_size", 16)
    for tensor in gguf.GGUFReader(f16_gguf).tensors:
        if len(tensor.shape) != 2:
            continue
        columns = int(tensor.shape[0])
        importance = np.ones(columns, dtype=np.float32)
        if scale_first_columns:
            importance[: columns // 8] = 1000.0
        writer.add_tensor(f"{tensor.name}.in_sum2", importance * 16)
        writer.add_tensor(f"{tensor.name}.counts", np.array([16.0], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_importance_matrix_steers_the_quantizer(f16_gguf: Path, tmp_path: Path) -> None:
    plain = quantize(f16_gguf, tmp_path / "plain.gguf", "Q4_K_M", progress=False)
    uniform = write_imatrix(f16_gguf, tmp_path / "uniform.imatrix.gguf", scale_first_columns=False)
    skewed = write_imatrix(f16_gguf, tmp_path / "skewed.imatrix.gguf", scale_first_columns=True)
    with_uniform = quantize(f16_gguf, tmp_path / "uniform.gguf", "Q4_K_M", imatrix=uniform, progress=False)
    with_skewed = quantize(f16_gguf, tmp_path / "skewed.gguf", "Q4_K_M", imatrix=skewed, progress=False)
    assert with_uniform.stat().st_size == plain.stat().st_size
    assert with_skewed.read_bytes() != with_uniform.read_bytes()


def test_unreadable_importance_matrix_is_a_one_line_error(f16_gguf: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.dat"
    bogus.write_bytes(b"\x01\x00")
    with pytest.raises(GGUFError, match=r"bogus\.dat: not an importance matrix"):
        quantize(f16_gguf, tmp_path / "out.gguf", "Q4_K_M", imatrix=bogus, progress=False)


def write_legacy_imatrix(gguf_imatrix: Path, path: Path) -> Path:
    """The same entries in the older `.dat` layout, values pre-multiplied by the call count as llama-imatrix did."""
    reader = gguf.GGUFReader(gguf_imatrix)
    sums = {t.name.removesuffix(".in_sum2"): np.array(t.data) for t in reader.tensors if t.name.endswith(".in_sum2")}
    with path.open("wb") as handle:
        handle.write(np.int32(len(sums)).tobytes())
        for name, values in sums.items():
            handle.write(np.int32(len(name)).tobytes() + name.encode())
            handle.write(np.array([16, values.size], dtype=np.int32).tobytes())
            handle.write(values.astype(np.float32).tobytes())
    return path


def test_legacy_and_gguf_importance_matrices_quantize_identically(f16_gguf: Path, tmp_path: Path) -> None:
    modern = write_imatrix(f16_gguf, tmp_path / "skewed.imatrix.gguf", scale_first_columns=True)
    legacy = write_legacy_imatrix(modern, tmp_path / "skewed.dat")
    from_modern = quantize(f16_gguf, tmp_path / "modern.gguf", "Q4_K_M", imatrix=modern, progress=False)
    from_legacy = quantize(f16_gguf, tmp_path / "legacy.gguf", "Q4_K_M", imatrix=legacy, progress=False)
    assert from_modern.read_bytes() == from_legacy.read_bytes()
