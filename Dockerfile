# codebooga server image: the OpenAI-compatible API on llama.cpp (CPU build).
# Build:  docker build -t codebooga .
# Run:    docker run -p 8000:8000 -v /models:/models codebooga --model /models/CodeBooga-34B-v0.1.Q4_K_M.gguf
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/codebooga
COPY pyproject.toml README.md ./
COPY server ./server
COPY merge ./merge
COPY prompts ./prompts
COPY presets ./presets
# A non-editable install: the venv holds all of codebooga (package `codebooga`), so the sources stay behind.
# llama.cpp is compiled as `make` compiles it: native, without ggml's AMX kernels, which crash at the first
# decode on Intel CPUs with AMX (docs/build.md#llamacpp-on-every-x86-cpu).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && no_amx="$(if [ "$(uname -m)" = x86_64 ]; then echo '-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'; fi)" \
    && CMAKE_ARGS="-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'" \
       CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 codebooga
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    CODEBOOGA_HOST=0.0.0.0 \
    CODEBOOGA_PORT=8000
USER codebooga
WORKDIR /home/codebooga
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"CODEBOOGA_PORT\"]}/health', timeout=2)"
ENTRYPOINT ["codebooga", "serve"]
