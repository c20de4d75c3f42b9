"""Every Dockerfile passes hadolint and builds llama.cpp from the same pinned release as `make`.

The images themselves are built and run by `make container-test` (deploy/container/container_test.sh): it
changes the host's container configuration and takes minutes, so `make test` checks the files only. The CUDA
image is never built here (no registry, hence no CUDA base image); this lint is all it gets.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from server_process import REPO_ROOT

DOCKERFILES = sorted(REPO_ROOT.glob("Dockerfile*"))
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_both_images_have_a_dockerfile() -> None:
    assert [path.name for path in DOCKERFILES] == ["Dockerfile", "Dockerfile.cuda"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    """Info-level findings fail too: each accepted one is an inline `# hadolint ignore=` with its reason nearby."""
    result = subprocess.run([str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_llama_cpp_is_built_like_make_builds_it(dockerfile: Path) -> None:
    """The pin `make` compiles (the one pyproject.toml requires), from source with codebooga's patches (by the
    script `make` runs), never ggml's AMX kernels."""
    text = dockerfile.read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    makefile_pin = re.search(r"^LLAMA_CPP_PYTHON := (\S+)$", makefile, re.M)
    assert makefile_pin is not None
    assert f"ARG LLAMA_CPP_PYTHON={makefile_pin.group(1)}\n" in text
    assert "LLAMA_PATCHES := server/engine/llama_cpp/patches\n" in makefile
    assert "$(LLAMA_PATCHES)/build-wheel.sh $(BIN)/pip" in makefile
    assert "COPY server/engine/llama_cpp/patches /opt/llama-patches\n" in text
    assert '/opt/llama-patches/build-wheel.sh /opt/venv/bin/pip "${LLAMA_CPP_PYTHON}" /tmp/wheels' in text
    assert "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in text
    assert "\nHEALTHCHECK " in text
