#!/usr/bin/env bash
# The library side of the end-to-end parity table (developers only): every recipe's original library
# on one split, then each dynamic-activation recipe twice more with its input moved by 1e-6.
#   PY=data/ref/venv/bin/python tools/reference/run_e2e.sh data/models/whisper-tiny.en LIBRISPEECH_DIR test-other data/ref/e2e
# Resumable: each recipe appends to its own JSON-lines file and skips utterances already there.
set -euo pipefail
model=$1 librispeech=$2 split=$3 out=$4
PY=${PY:-python3}
dir="$out/$(basename "$model")/$split"
mkdir -p "$dir"
# The kit's manifest order (sorted by utterance id); the first 10 % calibrate static recipes.
find "$librispeech/$split" -name '*.flac' | sort | awk -F/ '{id=$NF; sub(/\.flac$/, "", id); print id, $0}' > "$dir/list"
n=$(wc -l < "$dir/list"); head -n $(( (n + 9) / 10 )) "$dir/list" > "$dir/calibration.list"
RECIPES=${RECIPES:-"fp32 pytorch/dynamic-int8 quanto/w8 quanto/wf8 quanto/w4 quanto/w2 hqq/8 hqq/4 hqq/3 bnb/nf4 bnb/fp4 bnb/nf4-dq bnb/nf4-fp16 bnb/fp4-fp16 bnb/llm-int8 pytorch/static-int8 quanto/w8a8 quanto/w4a8 quanto/wf8a8 quanto/w8af8 quanto/w4af8 quanto/wf8af8 hqq/2 hqq/1"}
DYNAMIC=${DYNAMIC:-"pytorch/dynamic-int8 bnb/llm-int8"}
cd tools/reference
for r in $RECIPES; do
  f="$dir/$(echo "$r" | tr / _).jsonl"
  "$PY" library_transcribe.py "$model" "$r" "$dir/list" "$f" --calibration "$dir/calibration.list" 2> "$f.log"
  echo "$r: $(wc -l < "$f") utterances"
done
for r in $DYNAMIC; do
  for seed in 1 2; do
    f="$dir/$(echo "$r" | tr / _).perturb-1e-6-seed$seed.jsonl"
    "$PY" library_transcribe.py "$model" "$r" "$dir/list" "$f" --perturb 1e-6 --seed $seed 2> "$f.log"
    echo "$r perturbed (seed $seed): $(wc -l < "$f") utterances"
  done
done
