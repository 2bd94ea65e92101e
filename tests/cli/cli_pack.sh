#!/bin/sh
# `snapfusion pack` on the tiny fixture pipeline: writing and verifying a pack, txt2img and
# bench txt2img from it (the same PNG as the normal load with the same weight type), and the
# refusals (bad arguments: status 2; a damaged pack: status 1 with the library's message).
# usage: cli_pack.sh SNAPFUSION DEFAULT_FIXTURES WORK_DIR   (SNAPFUSION_FIXTURES overrides)
set -u
S=$1
F=${SNAPFUSION_FIXTURES:-$2}
W=$3
M=$F/public/tiny-sd
if [ ! -f "$M/model_index.json" ]; then
  echo "SKIPPED: $M not found (set SNAPFUSION_FIXTURES)"
  exit 77
fi
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# run CODE ARGS...: runs `snapfusion ARGS` (stdout to out, stderr to err), checks the exit status.
run() {
  want=$1
  shift
  ${SF_TEST_EMULATOR:-} "$S" "$@" >"$W/out" 2>"$W/err"
  got=$?
  if [ "$got" -ne "$want" ]; then
    fail "exit status $got, expected $want: snapfusion $*"
    sed 's/^/  | /' "$W/err" "$W/out"
    return 1
  fi
  return 0
}

has() { # has FILE TEXT
  grep -q -- "$2" "$1" || fail "$1 lacks '$2'"
}

for w in f32 f16 q8; do
  run 0 pack "$M" -o "$W/tiny-$w.sfpack" --weights $w -t 2 && has "$W/out" "$w weights"
  run 0 pack --verify "$W/tiny-$w.sfpack" && has "$W/out" "checksums match"
  run 0 txt2img -m "$M" --weights $w -p "a lighthouse" -W 64 -H 64 --steps 2 -t 2 -q -o "$W/normal-$w.png"
  run 0 txt2img -m "$M" --pack "$W/tiny-$w.sfpack" -p "a lighthouse" -W 64 -H 64 --steps 2 -t 2 -q -o "$W/pack-$w.png" &&
    has "$W/err" "mapped from the pack"
  cmp -s "$W/normal-$w.png" "$W/pack-$w.png" || fail "$w: the PNG from the pack differs from the normal load's"
done
# bench txt2img from a pack (tiny: the point is the report, not the figures)
run 0 bench txt2img --config "$M" --tokenizer "$F/public/tokenizer" --pack "$W/tiny-q8.sfpack" --size 64 --steps 2 --probe-seconds 0.01 --json -t 2 &&
  for k in '"first_step_s"' '"pack"' '"weights":"q8"' peak_anon_bytes; do has "$W/out" "$k"; done

# refusals
run 2 pack "$M" && has "$W/err" "missing -o"
run 2 pack -o x.sfpack && has "$W/err" "missing MODEL_DIR"
run 2 pack "$M" -o x.sfpack --weights f8
run 2 pack "$M" -o x.sfpack --seed 3 && has "$W/err" "random-weights"
run 2 txt2img --random-weights "$M" --pack "$W/tiny-q8.sfpack" -p x -o x.png
run 2 bench unet --config "$M" --pack "$W/tiny-q8.sfpack"
run 1 txt2img -m "$M" --pack "$W/tiny-q8.sfpack" --weights f16 -p x -W 64 -H 64 -q -o "$W/x.png" && has "$W/err" "q8"
head -c 5000 "$W/tiny-f32.sfpack" > "$W/cut.sfpack"
run 1 txt2img -m "$M" --pack "$W/cut.sfpack" -p x -W 64 -H 64 -q -o "$W/x.png" && has "$W/err" "truncated"
run 1 pack --verify "$W/cut.sfpack" && has "$W/err" "truncated"
# a damaged payload byte: loads (a load does not read every page) but fails verification
cp "$W/tiny-f32.sfpack" "$W/flip.sfpack"
size=$(wc -c < "$W/flip.sfpack")
printf '\377' | dd of="$W/flip.sfpack" bs=1 seek=$((size - 3)) conv=notrunc 2>/dev/null
run 1 pack --verify "$W/flip.sfpack" && has "$W/err" "damaged"
[ -e "$W/x.sfpack" ] && fail "a refused pack left x.sfpack behind"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "cli_pack: all passed"
