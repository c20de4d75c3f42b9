"""Keeping ggml's AMX kernels from crashing the server.

llama-cpp-python built the default way on an Intel CPU with AMX compiles ggml's AMX matrix kernels, and they
die with SIGSEGV at the first decode (docs/build.md#llamacpp-on-every-x86-cpu). `make` builds llama.cpp without
them. Should codebooga still run on such a build (installed some other way), it loads models without llama.cpp's
extra buffer types: that keeps the weights out of the AMX buffer, so the kernels never run. It also turns off the
CPU weight repacking that the extra buffer types carry, so it is slower than a build without AMX kernels, and
the warning says how to get that build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_AMX_KERNELS = re.compile(r"\bAMX_INT8\s*=\s*1\b")

AMX_WARNING = (
    "this llama.cpp was built with ggml's AMX kernels, which crash at the first decode: loading the model without "
    "extra buffer types (slower); rebuild llama.cpp with `make`, which leaves them out (see docs/build.md)"
)


@dataclass(frozen=True)
class ExtraBufferTypes:
    """Whether a model load may use llama.cpp's extra buffer types, and the warning to log when it may not."""

    enabled: bool
    warning: str | None = None


def choose_extra_buffer_types(system_info: str) -> ExtraBufferTypes:
    """Decide from `llama_print_system_info()`, which lists the CPU features the loaded build was compiled with:
    `AMX_INT8 = 1` there means the crashing kernels are in it."""
    if _AMX_KERNELS.search(system_info):
        return ExtraBufferTypes(enabled=False, warning=AMX_WARNING)
    return ExtraBufferTypes(enabled=True)
