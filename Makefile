# Two commands on a fresh machine: `make demo` (the main job on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
STAMP := $(VENV)/.installed
# llama-cpp-python (the VLM runtime) compiles llama.cpp from source: about 8 minutes on 2 cores. It is built
# once, portably (no -march=native: the wheel runs on any x86-64 with AVX2; on a Jetson set
# LLAMA_CMAKE_ARGS=-DGGML_CUDA=on), and kept in a wheel cache keyed by its version and flags.
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_WHEELS := $(HOME)/.cache/edge-rap/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)

.PHONY: demo test install clean

# Python 3.10 or newer (pyproject's requires-python), said in one line before anything is made: an older one
# failed in pip as "Cannot install torch==2.14.1 ... ResolutionImpossible". A PYTHON given for a .venv that
# another Python made is said too: it would have been used as it is, with that other Python.
ifneq ($(MAKECMDGOALS),clean)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2], sys.version_info >= (3, 10))' 2>/dev/null)
ifeq ($(PYTHON_VERSION),)
$(error $(PYTHON) does not run: make PYTHON=python3.10 (or a newer Python))
endif
ifneq ($(word 2,$(PYTHON_VERSION)),True)
$(error edge_rap needs Python 3.10 or newer; $(PYTHON) is $(word 1,$(PYTHON_VERSION)): make PYTHON=python3.10 (or a newer Python))
endif
VENV_VERSION := $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(origin PYTHON)$(if $(VENV_VERSION),,none),command line)
ifneq ($(VENV_VERSION),$(word 1,$(PYTHON_VERSION)))
$(error $(VENV) was made by Python $(VENV_VERSION), not $(PYTHON) ($(word 1,$(PYTHON_VERSION))): make clean first)
endif
endif
endif

# What the demo runs: the export of the default embedder (torch, once), faces, and the piper voice (GPL-3.0,
# an optional extra run in its own process). No llama.cpp: the demo answers in template mode.
$(BASE): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch and torchvision pinned to the releases this machine class keeps on disk (a bare `torch` pulls
	# gigabytes of CUDA wheels from PyPI); open_clip needs torchvision. Only model export uses them:
	# the runtime path is numpy + opencv + onnxruntime + usearch.
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[export,faces,piper]'
	touch $(BASE)

# Everything the tests exercise: CLIP, the detector export, and llama.cpp, built once into a wheel cache.
$(STAMP): $(BASE)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[export,clip,faces,detector,dev,piper,serve,serve-test,voice]'
	# silero VAD's ONNX file: the package's own requirement is torch, which the runtime must not need.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps silero-vad==6.2.3
	test -n "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl 2>/dev/null)" || { rm -rf $(LLAMA_WHEELS).tmp && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip wheel --quiet \
	    --disable-pip-version-check --no-deps -w $(LLAMA_WHEELS).tmp llama-cpp-python==$(LLAMA_CPP_VERSION) && \
	  rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); }
	$(BIN)/pip install --quiet --disable-pip-version-check $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[vlm,vlm-test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(BASE)
	$(BIN)/edge-rap demo

test: $(STAMP)
	$(BIN)/python -m pytest -rs

clean:
	rm -rf $(VENV) build *.egg-info
