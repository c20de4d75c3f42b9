# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

# llama.cpp, compiled by llama-cpp-python for this CPU, without ggml's AMX kernels: built the default way they
# crash at the first decode on Intel CPUs with AMX (docs/build.md#llamacpp-on-every-x86-cpu). Every other
# native instruction set (AVX-512, VNNI, BF16, weight repacking) stays on.
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.36
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON
endif
# codebooga's patches to the vendored llama.cpp (docs/build.md#patches-to-llamacpp), applied by the
# script beside them when the wheel is built.
LLAMA_PATCHES := server/engine/llama_cpp/patches
# pip's wheel cache ignores CMAKE_ARGS, so the build goes into a wheelhouse keyed by everything that shapes it:
# the version, the flags, this CPU's features (native builds), the compiler and the patches. A wheel built any
# other way is never picked up. llama-server (below) is built from the unpatched sources: it has its own key.
LLAMA_SOURCE_KEY := $(shell { echo '$(LLAMA_CPP_PYTHON) $(LLAMA_CMAKE_ARGS)'; grep -m1 -E '^(flags|Features)' /proc/cpuinfo; $${CC:-cc} --version 2>/dev/null | head -n1; } | sha256sum | cut -c1-16)
LLAMA_BUILD_KEY := $(shell { echo '$(LLAMA_SOURCE_KEY)'; cat $(LLAMA_PATCHES)/*.patch $(LLAMA_PATCHES)/build-wheel.sh; } | sha256sum | cut -c1-16)
WHEELHOUSE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/codebooga/wheels/$(LLAMA_BUILD_KEY)
LLAMA_WHEEL := $(WHEELHOUSE)/.built

.PHONY: serve test bench ide-bench soak fuzz container-test llama-wheel llama-server clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(LLAMA_WHEEL): | $(BIN)/python
	@echo "Compiling llama.cpp ($(LLAMA_CPP_PYTHON)) for this CPU without AMX kernels: about 8 minutes on 2 cores."
	@echo "  flags: $(LLAMA_CMAKE_ARGS)"
	@echo "  patches: $(notdir $(wildcard $(LLAMA_PATCHES)/*.patch))"
	@echo "  wheelhouse: $(WHEELHOUSE)"
	rm -rf $(WHEELHOUSE).tmp
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(LLAMA_PATCHES)/build-wheel.sh $(BIN)/pip '$(LLAMA_CPP_PYTHON)' $(WHEELHOUSE).tmp
	rm -rf $(WHEELHOUSE) && mv $(WHEELHOUSE).tmp $(WHEELHOUSE) && touch $@

llama-wheel: $(LLAMA_WHEEL)

# llama.cpp's own server, for the benchmarks only: built from the llama.cpp sources vendored in the same
# llama-cpp-python release, with the same flags and without codebooga's patches, as its users build it.
LLAMA_SERVER_DIR := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/codebooga/llama-server/$(LLAMA_SOURCE_KEY)
LLAMA_SERVER := $(LLAMA_SERVER_DIR)/llama-server

$(LLAMA_SERVER): | $(BIN)/python
	rm -rf $(LLAMA_SERVER_DIR).tmp && mkdir -p $(LLAMA_SERVER_DIR).tmp
	$(BIN)/pip download --quiet --no-deps --no-binary :all: -d $(LLAMA_SERVER_DIR).tmp '$(LLAMA_CPP_PYTHON)'
	tar -xzf $(LLAMA_SERVER_DIR).tmp/llama_cpp_python-*.tar.gz -C $(LLAMA_SERVER_DIR).tmp
	cmake -S $(LLAMA_SERVER_DIR).tmp/llama_cpp_python-*/vendor/llama.cpp -B $(LLAMA_SERVER_DIR).tmp/build \
		-DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF $(LLAMA_CMAKE_ARGS)
	cmake --build $(LLAMA_SERVER_DIR).tmp/build --target llama-server -j $$(nproc)
	mkdir -p $(LLAMA_SERVER_DIR) && cp $(LLAMA_SERVER_DIR).tmp/build/bin/llama-server $@ && rm -rf $(LLAMA_SERVER_DIR).tmp

llama-server: $(LLAMA_SERVER)

# The exact wheel from the wheelhouse goes in first, so the project install finds the requirement satisfied and
# never builds or takes a cached llama-cpp-python of its own. Stamp files re-run the install whenever
# pyproject.toml or the wheel changes.
$(VENV)/.llama-installed: $(LLAMA_WHEEL)
	$(BIN)/pip install --quiet --no-deps --no-cache-dir --force-reinstall $(WHEELHOUSE)/llama_cpp_python-*.whl
	touch $@

$(VENV)/.serve-installed: pyproject.toml $(VENV)/.llama-installed
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.llama-installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.serve-installed

serve: $(VENV)/.serve-installed
	$(BIN)/codebooga serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/serve_bench.py
	$(BIN)/python bench/merge_bench.py

ide-bench: $(VENV)/.dev-installed $(LLAMA_SERVER)
	$(BIN)/python bench/ide_bench.py --llama-server $(LLAMA_SERVER)

soak: $(VENV)/.dev-installed
	CODEBOOGA_SOAK_SECONDS=120 $(BIN)/python -m pytest tests/engine/test_soak.py -s -o timeout=900

# schemathesis against the real server with a fresh seed; `make test` runs a short, seeded round.
fuzz: $(VENV)/.dev-installed
	CODEBOOGA_FUZZ_PHASES=coverage,fuzzing CODEBOOGA_FUZZ_EXAMPLES=300 CODEBOOGA_FUZZ_SEED= \
		$(BIN)/python -m pytest tests/api/test_fuzz.py -s -o timeout=3600

# The image built and run for real with podman (docs/deploy.md#one-container): as root, minutes, and it writes
# /etc/containers/containers.conf, so never part of `make test`. The venv only tells it where the embedded model is.
container-test: $(VENV)/.serve-installed
	PYTHON=$(BIN)/python deploy/container/container_test.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
