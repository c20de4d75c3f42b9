#!/usr/bin/env bash
# One prepared run on a lent NVIDIA GPU machine (docs/exl2.md#gpu-verification): the EXL2 GPU tests and the GPU
# serving benchmark, everything logged under $OUT. The machine reaches no package registry, so what it lacks comes
# with the working tree, prepared on the CPU machine by bench/gpu_prepare.sh:
#   .whl/   wheels for Python 3.12: the serving and test dependencies the image lacks, exllamav2
#   .gpu/   llama_cpp with llama.cpp compiled for CUDA (sm_90), and exllamav2's CUDA extension compiled ahead of time
#           for sm_90 against the machine's torch
# Every step has its own time limit and the script goes on after a failure, so one run reports as much as it can.
# $OUT gets five files (the device tool brings back at most eight): steps.log, pytest-gpu.log, bench-prepare.log,
# bench.log and gpu_bench.json.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
START=$(date +%s)
step() { echo "== [$(($(date +%s) - START)) s] $*" | tee -a "$OUT/steps.log"; }

step "install carried wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | tail -3
tar -C /tmp/site -xzf .gpu/llama_cpp.tar.gz
gunzip -c .gpu/exllamav2_ext.so.gz > /tmp/site/exllamav2_ext.so || step "no prebuilt exllamav2 extension: it will JIT-compile"
# codebooga from this checkout, under its one import name, as an editable install would give it
mkdir -p /tmp/site/codebooga
for part in server merge prompts presets; do ln -sfn "$PWD/$part" "/tmp/site/codebooga/$part"; done
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16
CUDA_LIBS=$(python3 -c 'import nvidia, os; print(":".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))')
export LD_LIBRARY_PATH=$CUDA_LIBS:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}

if ! timeout 120 python3 -c "import torch, exllamav2_ext" >> "$OUT/steps.log" 2>&1; then
    step "the prebuilt exllamav2 extension does not load here (error above): it will JIT-compile"
    rm -f /tmp/site/exllamav2_ext.so
fi

step "machine"
{ nvidia-smi; nproc; python3 --version; } >> "$OUT/steps.log" 2>&1
timeout 300 python3 - 2>&1 <<'EOF' | tee -a "$OUT/steps.log"
import time, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
started = time.time()
import exllamav2, exllamav2.ext
print("exllamav2", exllamav2.__version__, f"extension ready in {time.time() - started:.1f} s")
import llama_cpp
print("llama_cpp", llama_cpp.__version__, llama_cpp.llama_print_system_info().decode())
print("llama.cpp GPU offload:", llama_cpp.llama_supports_gpu_offload())
EOF

step "EXL2 GPU tests, and the benchmark's model and quants made alongside"
timeout 420 python3 bench/gpu_bench.py --work /tmp/gpu-bench --out "$OUT/gpu_bench.json" --prepare-only "$@" \
    > "$OUT/bench-prepare.log" 2>&1 &
prepare=$!
# The image's own pytest plugins stay out: only the two the suite uses are loaded, from the carried wheels.
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout 300 python3 -m pytest -p pytest_timeout -p pytest_asyncio.plugin \
    tests/exl2 -m gpu -v -rs -s -p no:cacheprovider --basetemp /tmp/gpu-tests \
    > "$OUT/pytest-gpu.log" 2>&1
echo "pytest exit $?" | tee -a "$OUT/steps.log"
tail -25 "$OUT/pytest-gpu.log"

wait $prepare
echo "benchmark preparation exit $?" | tee -a "$OUT/steps.log"
for log in /tmp/gpu-bench/*.log; do { echo "== $log"; tail -c 1500 "$log"; echo; } >> "$OUT/bench-prepare.log"; done
tail -3 "$OUT/bench-prepare.log"

step "GPU serving benchmark"
timeout 150 python3 bench/gpu_bench.py --work /tmp/gpu-bench --out "$OUT/gpu_bench.json" "$@" > "$OUT/bench.log" 2>&1
echo "bench exit $?" | tee -a "$OUT/steps.log"
tail -15 "$OUT/bench.log"
step "done"
