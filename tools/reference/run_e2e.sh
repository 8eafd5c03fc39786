#!/usr/bin/env bash
# The library side of the end-to-end parity table (developers only): every recipe's original library
# on one split (static recipes calibrated on its first 10 %), the recipes that collapse into
# repetition loops on the first 10 utterances only, and the library's own spread: the dynamic-
# activation recipes twice more, the static ones and hqq/3 once more, with the input moved by 1e-6.
#   python3 -m venv data/ref/venv && data/ref/venv/bin/pip install -r tools/reference/requirements.txt
#   PY=data/ref/venv/bin/python tools/reference/run_e2e.sh data/models/whisper-tiny.en <LibriSpeech dir> test-other data/ref/e2e
# Resumable: each run appends to its own JSON-lines file and skips utterances already there.
# The kit's side: ptq grid --config tools/reference/e2e-grid.json (and e2e-grid-collapsing.json)
# --librispeech-dir <LibriSpeech dir> --results data/ref/kit-results; then tools/parity-e2e.ts.
set -euo pipefail
model=$(realpath "$1") librispeech=$(realpath "$2") split=$3 out=$(realpath -m "$4")
PY=$(realpath "${PY:-$(command -v python3)}")
dir="$out/$(basename "$model")/$split"
mkdir -p "$dir"
# The kit's manifest order (sorted by utterance id); the first 10 % calibrate static recipes.
find "$librispeech/$split" -name '*.flac' | sort | awk -F/ '{id=$NF; sub(/\.flac$/, "", id); print id, $0}' > "$dir/list"
n=$(wc -l < "$dir/list"); head -n $(( (n + 9) / 10 )) "$dir/list" > "$dir/calibration.list"
RECIPES=${RECIPES:-"fp32 pytorch/dynamic-int8 quanto/w8 quanto/wf8 quanto/w4 hqq/8 hqq/4 hqq/3 bnb/nf4 bnb/fp4 bnb/nf4-dq bnb/fp4-dq bnb/nf4-fp16 bnb/nf4-fp16-dq bnb/fp4-fp16 bnb/fp4-fp16-dq bnb/llm-int8 pytorch/static-int8 quanto/w8a8 quanto/w4a8 quanto/wf8a8 quanto/w8af8 quanto/w4af8 quanto/wf8af8"}
COLLAPSING=${COLLAPSING:-"quanto/w2 hqq/2 hqq/1"}
DYNAMIC=${DYNAMIC:-"pytorch/dynamic-int8 bnb/llm-int8"}
SPREAD=${SPREAD:-"quanto/w8a8 pytorch/static-int8 hqq/3 bnb/fp4 quanto/w4af8 quanto/w4a8 quanto/wf8a8 quanto/w8af8 quanto/wf8af8"}
cd "$(dirname "$0")"
one() { # recipe list output [options]
  local r=$1 list=$2 f=$3; shift 3
  "$PY" library_transcribe.py "$model" "$r" "$list" "$f" --calibration "$dir/calibration.list" "$@" 2> "$f.log"
  echo "$r $*: $(wc -l < "$f") utterances"
}
name() { echo "$dir/$(echo "$1" | tr / _)$2.jsonl"; }
for r in $RECIPES; do one "$r" "$dir/list" "$(name "$r" "")"; done
for r in $COLLAPSING; do one "$r" "$dir/list" "$(name "$r" "")"; done # 448-token loops: about 11-15 s an utterance here
for r in $DYNAMIC; do for seed in 1 2; do one "$r" "$dir/list" "$(name "$r" ".perturb-1e-6-seed$seed")" --perturb 1e-6 --seed $seed; done; done
for r in $SPREAD; do one "$r" "$dir/list" "$(name "$r" ".perturb-1e-6-seed1")" --perturb 1e-6 --seed 1; done
