#!/bin/sh
# The test suite on another Python than the .venv's: 3.10 (a Jetson's JetPack 6, Ubuntu 22.04), 3.12 (Ubuntu
# 24.04), 3.13 (Debian 13). Makes (once) a venv for it with the runtime and the extras the tests use, from PyPI,
# as a user of that Python gets them (another numpy, onnxruntime, uvicorn than 3.11's), but without torch
# (gigabytes of CUDA wheels; its tests skip) and without compiling llama-cpp-python: the wheel `make install`
# built is taken from its cache where there is one (ctypes, the same for every Python), else its tests skip.
# The default embedders are copied from this host's prepared model cache (EDGE_RAP_TEST_MODELS), as nothing
# exports them without torch. From the repository's root:
#
#   tools/python_versions.sh /usr/bin/python3.10 [pytest arguments, default: tests]
#
# The venv is /tmp/edge-rap-py3.10 (VENV=... for another); the tests run niced, with their skips listed.
set -eu

PYTHON=${1:?usage: tools/python_versions.sh PYTHON [pytest arguments]}
shift
VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV=${VENV:-/tmp/edge-rap-py$VERSION}
MODELS=${EDGE_RAP_TEST_MODELS:-$HOME/.local/share/edge-rap/models}
LLAMA_WHEEL=$(ls "$HOME"/.cache/edge-rap/wheels/llama-cpp-python-*/llama_cpp_python-*.whl 2>/dev/null | tail -n 1)

[ -d "$MODELS/efficientnet-lite0-int8" ] ||
    { echo "no prepared model cache at $MODELS: run edge-rap models prepare (with the .venv's torch) first" >&2; exit 1; }
if [ ! -e "$VENV/.installed" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # the export extra's ONNX tools and calibration photos, vlm's Python side and silero VAD's ONNX file, all
    # without torch (silero-vad's own requirement: --no-deps, as the Makefile installs it)
    "$VENV/bin/pip" install -q -e '.[faces,dev,serve,serve-test,voice,piper,vlm-test]' \
        'onnx>=1.15' 'onnxscript>=0.1' 'scikit-image>=0.22' 'matplotlib>=3.7' jinja2 'huggingface_hub>=0.23' 'gguf>=0.10'
    "$VENV/bin/pip" install -q --no-deps silero-vad==6.2.3
    if [ -n "$LLAMA_WHEEL" ]; then "$VENV/bin/pip" install -q "$LLAMA_WHEEL"; fi
    touch "$VENV/.installed"
fi
"$VENV/bin/python" -VV
[ $# -gt 0 ] || set -- tests
PYTHONPATH=$(pwd) EDGE_RAP_TEST_MODELS=$MODELS nice -n 10 "$VENV/bin/python" -m pytest -p no:cacheprovider -rs "$@"
