"""Compile exllamav2's CUDA extension ahead of time, with the sources and flags its own ext.py JIT-compiles, so a GPU
machine with a short lease loads it with `import exllamav2_ext` instead of spending minutes building it.

    TORCH_CUDA_ARCH_LIST=9.0 python bench/exllamav2_ext_build.py BUILD_DIR     (bench/gpu_prepare.sh runs this)

Run it with the torch the GPU machine has (the extension's C++ ABI is torch's); no GPU is needed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path


def extension_sources(package: Path) -> list[str]:
    """The source list in exllamav2/ext.py (importing exllamav2 would start its JIT build, so it is read as text)."""
    text = (package / "ext.py").read_text()
    block = text[text.index("sources_ = \\") : text.index("sources = [os.path.join")]
    return [str(package / "exllamav2_ext" / name) for name in re.findall(r'"([^"]+\.(?:cpp|cu))"', block)]


def main() -> None:
    from torch.utils.cpp_extension import load

    build = Path(sys.argv[1])
    build.mkdir(parents=True, exist_ok=True)
    package = Path(importlib.util.find_spec("exllamav2").origin).parent
    cuda_headers = Path(importlib.util.find_spec("nvidia").submodule_search_locations[0]) / "cu13" / "include"
    started = time.monotonic()
    load(
        name="exllamav2_ext",
        sources=extension_sources(package),
        extra_include_paths=[str(package / "exllamav2_ext"), str(cuda_headers)],
        extra_cflags=["-Ofast"],
        extra_cuda_cflags=["-lineinfo", "-O3"],
        build_directory=str(build),
        verbose=True,
    )
    print(f"exllamav2_ext built in {time.monotonic() - started:.0f} s: {build / 'exllamav2_ext.so'}")


if __name__ == "__main__":
    main()
