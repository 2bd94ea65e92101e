#!/bin/sh
# txt2img with LoRAs on the model-format fixture set (its lora/* cases name the base folder and
# the LoRA files): --lora FILE:SCALE and the prompt's <lora:NAME:SCALE> tag with --lora-dir give the
# same PNG (pixels and parameters, which record <lora:NAME:SCALE>); two LoRAs at once; the
# refusals: a tag without --lora-dir or naming no file, a malformed --lora (status 2), a missing
# LoRA file or one for another model (status 1 with the library's message).
# usage: cli_lora.sh SNAPFUSION DEFAULT_FIXTURES WORK_DIR   (SNAPFUSION_FIXTURES overrides)
set -u
S=$1
F=${SNAPFUSION_FIXTURES:-$2}/models
W=$3
if [ ! -f "$F/manifest.json" ]; then
  echo "SKIPPED: $F/manifest.json not found (set SNAPFUSION_FIXTURES)"
  exit 77
fi
base=$(sed -n 's/.*"model": "\([^"/ ]*\)[^"]* + LoRA.*/\1/p' "$F/manifest.json" | head -n 1)
files=$(grep -o '"file": "lora/[^"]*\.safetensors"' "$F/manifest.json" | sed 's/.*"\(lora\/[^"]*\)"/\1/' | sort -u)
L1=$(echo "$files" | sed -n 1p)
L2=$(echo "$files" | sed -n 2p)
if [ -z "$base" ] || [ -z "$L1" ] || [ ! -f "$F/$base/model_index.json" ]; then
  echo "SKIPPED: no LoRA case with a base folder in $F/manifest.json"
  exit 77
fi
M=$F/$base
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
run() { # run CODE ARGS...
  want=$1
  shift
  "$S" "$@" >"$W/out" 2>"$W/err"
  got=$?
  if [ "$got" -ne "$want" ]; then
    fail "exit status $got, expected $want: snapfusion $*"
    sed 's/^/  | /' "$W/err" "$W/out"
    return 1
  fi
  return 0
}
has() { grep -a -q -- "$2" "$1" || fail "$1 lacks '$2'"; }

name1=$(basename "$L1" .safetensors)
dir1=$(dirname "$F/$L1")
common="-m $M -W 64 -H 64 --steps 2 -t 2 -q"
run 0 txt2img $common -p "a watercolor fox" --lora "$F/$L1:0.75" -o flag.png
run 0 txt2img $common -p "a watercolor fox <lora:$name1:0.75>" --lora-dir "$dir1" -o tag.png
has flag.png "<lora:$name1:0.75>"
cmp -s flag.png tag.png || fail "--lora FILE:0.75 and <lora:$name1:0.75> differ"
run 0 txt2img $common -p "a watercolor fox" -o base.png
cmp -s base.png flag.png && fail "the LoRA changed nothing"
if [ -n "$L2" ]; then
  name2=$(basename "$L2" .safetensors)
  run 0 txt2img $common -p "a watercolor fox" --lora "$F/$L1:0.75" --lora "$F/$L2:0.4" -o two.png
  has two.png "<lora:$name1:0.75> <lora:$name2:0.4>"
fi
run 2 txt2img $common -p "x <lora:$name1:0.5>" -o e.png && has err "--lora-dir"
run 2 txt2img $common -p "x <lora:no-such-lora>" --lora-dir "$dir1" -o e.png && has err "no-such-lora"
run 2 txt2img $common -p "x <lora:$name1:abc>" --lora-dir "$dir1" -o e.png && has err "<lora:$name1:abc>"
run 2 txt2img $common -p x --lora "" -o e.png
run 1 txt2img $common -p x --lora "$W/missing.safetensors:0.5" -o e.png && has err "missing.safetensors"
printf 'not a safetensors file at all' >bad.safetensors
run 1 txt2img $common -p x --lora "$W/bad.safetensors" -o e.png && has err "bad.safetensors"
[ -f e.png ] && fail "a refused run left e.png"
if [ "$failures" -ne 0 ]; then
  echo "$failures failures"
  exit 1
fi
echo "cli_lora: all passed"
