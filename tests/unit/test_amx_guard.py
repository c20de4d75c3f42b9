"""ggml's AMX kernels crash at the first decode: the build `make` installs has none, and a build that has them is
loaded without extra buffer types (with a warning naming the fix) instead of crashing."""

from __future__ import annotations

import logging

import pytest

from codebooga.server.engine.llama_cpp.amx_guard import AMX_WARNING, choose_extra_buffer_types

WITHOUT_AMX = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | " \
    "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
WITH_AMX = WITHOUT_AMX + "AMX_INT8 = 1 | "


def test_a_build_without_amx_kernels_keeps_the_extra_buffer_types() -> None:
    choice = choose_extra_buffer_types(WITHOUT_AMX)
    assert choice.enabled and choice.warning is None


def test_a_build_with_amx_kernels_loads_without_them_and_names_the_fix() -> None:
    choice = choose_extra_buffer_types(WITH_AMX)
    assert not choice.enabled
    assert choice.warning is not None and "\n" not in choice.warning
    assert "`make`" in choice.warning and "docs/build.md" in choice.warning


def test_the_llama_cpp_that_make_installs_has_no_amx_kernels() -> None:
    from codebooga.server.engine.llama_cpp.model import system_info

    info = system_info()
    assert "CPU" in info, info
    assert choose_extra_buffer_types(info).enabled, f"rebuild llama.cpp with `make` (docs/build.md): {info}"


@pytest.mark.parametrize(("reported", "repacks"), [(WITHOUT_AMX, True), (WITH_AMX, False)], ids=["no-amx", "amx"])
def test_the_decision_reaches_llama_cpp(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, reported: str, repacks: bool
) -> None:
    """llama.cpp considers its CPU_REPACK buffer type only while extra buffer types are on; it says so at load."""
    from codebooga.server.embedded_model import embedded_model_path
    from codebooga.server.engine.llama_cpp import model

    monkeypatch.setattr(model, "system_info", lambda: reported)
    with caplog.at_level(logging.DEBUG, logger="codebooga.llama_cpp"):
        loaded = model.LlamaCppModel(embedded_model_path(), model.ContextOptions(n_ctx_per_seq=256, n_parallel=1))
    loaded.close()
    warnings = [record.message for record in caplog.records if record.levelno == logging.WARNING]
    assert ("CPU_REPACK" in caplog.text) is repacks
    assert warnings == ([] if repacks else [AMX_WARNING])
