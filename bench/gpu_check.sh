#!/usr/bin/env bash
# One prepared run on a lent NVIDIA GPU machine (docs/exl2.md#gpu-verification): the EXL2 GPU tests and the GPU
# serving benchmark, everything logged under $OUT. The machine reaches no package registry, so what it lacks comes
# with the working tree, prepared on the CPU machine by bench/gpu_prepare.sh:
#   .whl/   wheels for Python 3.12 (serving deps, exllamav2, llama-cpp-python built with GGML_CUDA for sm_90)
#   .gpu/   exllamav2's CUDA extension compiled ahead of time for sm_90 against the machine's torch
# Every step has its own time limit and the script goes on after a failure, so one run reports as much as it can.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
START=$(date +%s)
step() { echo "== [$(($(date +%s) - START)) s] $*" | tee -a "$OUT/steps.log"; }

step "install carried wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | tail -3
cp .gpu/exllamav2_ext*.so /tmp/site/ 2>/dev/null || step "no prebuilt exllamav2 extension: it will JIT-compile"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16
CUDA_LIBS=$(python3 -c 'import nvidia, os; print(":".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))')
export LD_LIBRARY_PATH=$CUDA_LIBS:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}

if ! timeout 120 python3 -c "import torch, exllamav2_ext" > "$OUT/prebuilt-extension.txt" 2>&1; then
    step "the prebuilt exllamav2 extension does not load here (see prebuilt-extension.txt): it will JIT-compile"
    rm -f /tmp/site/exllamav2_ext*.so
fi

step "machine"
{ nvidia-smi; nproc; python3 --version; } > "$OUT/machine.txt" 2>&1
timeout 300 python3 - > "$OUT/versions.txt" 2>&1 <<'EOF'
import time, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
started = time.time()
import exllamav2, exllamav2.ext
print("exllamav2", exllamav2.__version__, f"extension ready in {time.time() - started:.1f} s")
import llama_cpp
print("llama_cpp", llama_cpp.__version__, llama_cpp.llama_print_system_info().decode())
print("llama.cpp GPU offload:", llama_cpp.llama_supports_gpu_offload())
EOF
cat "$OUT/versions.txt"

step "EXL2 GPU tests"
# The image's own pytest plugins stay out: only the two the suite uses are loaded, from the carried wheels.
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout 330 python3 -m pytest -p pytest_timeout -p pytest_asyncio.plugin \
    tests/exl2 -m gpu -v -rs -s -p no:cacheprovider --basetemp /tmp/gpu-tests \
    > "$OUT/pytest-gpu.log" 2>&1
echo "pytest exit $?" | tee -a "$OUT/steps.log"
tail -25 "$OUT/pytest-gpu.log"

step "GPU serving benchmark"
timeout 240 python3 bench/gpu_bench.py --work /tmp/gpu-bench --out "$OUT/gpu_bench.json" "$@" > "$OUT/bench.log" 2>&1
echo "bench exit $?" | tee -a "$OUT/steps.log"
tail -15 "$OUT/bench.log"
step "done"
