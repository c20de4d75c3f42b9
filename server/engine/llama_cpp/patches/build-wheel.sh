#!/bin/sh
# Builds the llama-cpp-python wheel codebooga runs on: the release's sdist, its vendored llama.cpp with the
# patches in this folder applied, compiled with $CMAKE_ARGS (the Makefile and the Dockerfile pass the AMX-safe
# flags). Why each patch exists: docs/build.md#patches-to-llamacpp.
#
#   build-wheel.sh PIP REQUIREMENT WHEEL_DIR      e.g. .venv/bin/pip llama-cpp-python==0.3.36 wheels/
set -eu
[ $# -eq 3 ] || { echo "usage: $0 PIP REQUIREMENT WHEEL_DIR" >&2; exit 2; }
pip=$1 requirement=$2 wheel_dir=$3
patches=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$pip" download --quiet --no-deps --no-binary :all: -d "$work" "$requirement"
tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
source_dir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'llama_cpp_python-*')
for patch_file in "$patches"/*.patch; do
    if ! patch --quiet --forward --batch -p1 -d "$source_dir/vendor/llama.cpp" <"$patch_file"; then
        echo "$(basename "$patch_file") does not apply to the llama.cpp vendored in $requirement:" \
             "it is written for llama-cpp-python==0.3.36" >&2
        exit 1
    fi
done
"$pip" wheel --quiet --no-deps --no-cache-dir -w "$wheel_dir" "$source_dir"
