#!/bin/sh
# The command-line tool's option handling, output files, progress and preview, on the tiny
# fixture pipeline (each generation takes well under a second).
# usage: cli_txt2img.sh SNAPFUSION DEFAULT_FIXTURES WORK_DIR   (SNAPFUSION_FIXTURES overrides)
set -u
S=$1
F=${SNAPFUSION_FIXTURES:-$2}
W=$3
M=$F/public/tiny-sd
T=$F/public/taesd
if [ ! -f "$M/model_index.json" ]; then
  echo "SKIPPED: $M not found (set SNAPFUSION_FIXTURES)"
  exit 77
fi
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
CPUS=$(getconf _NPROCESSORS_ONLN)
NOMODEL=$W/no-such-model   # reaching the model load with this fails with status 1
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# run CODE ARGS...: runs `snapfusion ARGS` (stdout to out, stderr to err) and checks the
# exit status; returns non-zero (after reporting) when it differs.
run() {
  want=$1
  shift
  LAST="snapfusion $*"
  ${SF_TEST_EMULATOR:-} "$S" "$@" >"$W/out" 2>"$W/err"
  got=$?
  if [ "$got" -ne "$want" ]; then
    fail "exit status $got, expected $want: $LAST"
    sed 's/^/  | /' "$W/err"
    return 1
  fi
  return 0
}

# err_has TEXT / err_lacks TEXT: about the stderr of the last run (fixed strings).
err_has() {
  grep -qF -- "$1" "$W/err" || { fail "stderr lacks '$1': $LAST"; sed 's/^/  | /' "$W/err"; }
}
err_lacks() {
  if grep -qF -- "$1" "$W/err"; then fail "stderr has '$1': $LAST"; sed 's/^/  | /' "$W/err"; fi
}
# usage_error ARGS...: status 2 with a single line on stderr (and no model loaded: callers
# pass NOMODEL, whose load would fail with status 1).
usage_error() {
  run 2 "$@" || return 1
  n=$(wc -l <"$W/err")
  [ "$n" -eq 1 ] || { fail "$n lines on stderr, expected 1: $LAST"; sed 's/^/  | /' "$W/err"; }
}
# is_png FILE [WIDTH HEIGHT]
is_png() {
  [ -s "$1" ] || { fail "$1 missing or empty (after: $LAST)"; return 1; }
  sig=$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')
  [ "$sig" = 89504e470d0a1a0a ] || { fail "$1 is not a PNG (after: $LAST)"; return 1; }
  if [ $# -eq 3 ]; then
    wh=$(od -An -tu1 -j16 -N8 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4 "x" $5*16777216+$6*65536+$7*256+$8}')
    [ "$wh" = "$2x$3" ] || fail "$1 is $wh, expected $2x$3 (after: $LAST)"
  fi
}

# ---- -t beyond the online CPUs: a one-line warning, the run goes on ----
MORE=$((CPUS + 1))
run 0 txt2img -m "$M" -p "a cat" --steps 1 -t "$MORE" -q -o "$W/t.png" && is_png "$W/t.png"
err_has "-t $MORE is more than the $CPUS online CPUs"
run 0 txt2img -m "$M" -p "a cat" --steps 2 -t 1 -q -o "$W/t.png"
err_lacks "online CPUs"
run 1 bench unet --config "$NOMODEL" --probe-seconds 0.01 -t "$MORE"
err_has "-t $MORE is more than the $CPUS online CPUs"
run 0 check "$F/public" --case no-such-case -t "$MORE"
err_has "-t $MORE is more than the $CPUS online CPUs"

# ---- numeric options: usage errors (status 2, one line) before any model is loaded ----
for bad in "--steps 0" "--steps 5000" "--steps 1001" "--steps x" \
           "-W 0" "-W 60" "-W 8200" "-W -64" "-H 0" "-H 12" "-H 16384" \
           "--cfg-scale nan" "--cfg-scale inf" "--cfg-scale -inf" "--cfg-scale 1e999" "--cfg-scale abc" "--cfg-scale ''" \
           "--clip-skip -1" "--clip-skip 99999999999999999999" \
           "--batch-count 0" "--batch-count 10001" \
           "-t 0" "-t 5000" "-t 4294967297" \
           "--seed -2" "--seed 18446744073709551616" "--seed +5" \
           "--strength 1.5"; do
  eval "set -- $bad"
  usage_error txt2img -m "$NOMODEL" -p x "$@" -o "$W/u.png"
done
usage_error txt2img -m "$NOMODEL" -p x --init-img "$W/in.png" --strength -0.1 -o "$W/u.png"
usage_error txt2img -m "$NOMODEL" -p x --steps 5000 -o "$W/u.png" && err_has "--steps takes 1..1000"
# --strength is img2img's: without --init-img it is a usage error
usage_error txt2img -m "$NOMODEL" -p x --strength 0.5 -o "$W/u.png" && err_has "--strength needs --init-img"
# an option without its value
usage_error txt2img -m "$NOMODEL" -p x -o && err_has "-o needs a value"
# the limits themselves are accepted
run 0 txt2img -m "$M" -p x -W 64 -H 64 --steps 1 --cfg-scale 1e3 --seed 18446744073709551615 -q -o "$W/edge.png" &&
  is_png "$W/edge.png" 64 64

# --seed -1 draws a seed: it is printed, recorded in the PNG, and reproduces the image
run 0 txt2img -m "$M" -p x --steps 1 --seed -1 -o "$W/rnd.png"
rs=$(sed -n 's/^wrote .* (seed \([0-9][0-9]*\)).*/\1/p' "$W/err")
[ -n "$rs" ] || fail "--seed -1: no seed in the wrote line"
grep -aq "Seed: $rs," "$W/rnd.png" || fail "--seed -1: the PNG does not record seed $rs"
run 0 txt2img -m "$M" -p x --steps 1 -q --seed "$rs" -o "$W/rnd2.png" && cmp -s "$W/rnd.png" "$W/rnd2.png" ||
  fail "--seed $rs does not reproduce the --seed -1 image"

# ---- -o: only PNG is written, so only .png names (any case) ----
for name in out.jpg out.jpeg out out.png.txt "$W" "$W/"; do
  usage_error txt2img -m "$NOMODEL" -p x -o "$name" && err_has "only PNG is written"
done
run 0 txt2img -m "$M" -p x --steps 1 -q -o "$W/upper.PNG" && is_png "$W/upper.PNG" 64 64
[ ! -e "$W/out.jpg" ] || fail "out.jpg was written"

# ---- --batch-count: default names, and printf-style %d patterns ----
mkdir -p "$W/batch" && cd "$W/batch" || exit 1
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 3 -o plain.png &&
  for f in plain-0.png plain-1.png plain-2.png; do is_png "$f" 64 64; done
[ ! -e plain.png ] || fail "plain.png written with --batch-count 3"
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 2 -o Caps.PNG && is_png Caps-0.PNG && is_png Caps-1.PNG
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 1 -o one.png && is_png one.png
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 3 -o 'out-%03d.png' &&
  for f in out-000.png out-001.png out-002.png; do is_png "$f" 64 64; done
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 11 -o 'n%d.png' && is_png n0.png && is_png n10.png
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 2 -o 'l%-3d.png' && is_png 'l0  .png' && is_png 'l1  .png'
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 2 -o 's%+d_%%.png' && is_png 's+0_%.png' && is_png 's+1_%.png'
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 1 -o 'single-%02d.png' && is_png single-00.png
run 0 txt2img -m "$M" -p x --steps 1 -q --batch-count 2 -o '100%%.png' && is_png '100%-0.png' && is_png '100%-1.png'
# each image is its own seed: the batch's files differ, and the %d index is the batch index
cmp -s out-000.png out-001.png && fail "batch images 0 and 1 are identical"
run 0 txt2img -m "$M" -p x --steps 1 -q --seed 1 -o seed1.png && cmp -s seed1.png out-001.png ||
  fail "out-001.png is not the seed-1 image"
n_before=$(ls | wc -l)
for bad in 'a%s.png' 'a%.png' 'a%x.png' 'a%ld.png' 'a%.3d.png' 'a%d%d.png' 'a%d-%03d.png' 'a%123d.png' 'a%*d.png' '%n.png' 'x%'; do
  usage_error txt2img -m "$NOMODEL" -p x --batch-count 2 -o "$bad"
done
usage_error txt2img -m "$NOMODEL" -p x -o 'a%s.png' && err_has "%d"
[ "$(ls | wc -l)" -eq "$n_before" ] || fail "a rejected pattern wrote a file"
cd "$W" || exit 1
# --help documents both namings
run 0 txt2img --help && grep -qF "OUT-0.png" "$W/out" && grep -qF "out-%03d.png" "$W/out" ||
  fail "txt2img --help does not document the batch names"

# ---- outputs are checked to be writable before the model loads (status 1) ----
run 1 txt2img -m "$NOMODEL" -p x -o "$W/no-such-dir/x.png" && err_has "cannot write $W/no-such-dir/x.png" &&
  err_lacks "no-such-model"
run 1 txt2img -m "$M" -p x -o "$W/no-such-dir/x.png" && err_lacks "loading" && err_lacks "wrote"
mkdir -p "$W/dir.png"
run 1 txt2img -m "$NOMODEL" -p x -o "$W/dir.png" && err_has "cannot write $W/dir.png"
mkdir -p "$W/b0"
run 1 txt2img -m "$NOMODEL" -p x --batch-count 2 -o "$W/b%d/x.png" && err_has "cannot write $W/b1/x.png"
[ ! -e "$W/b0/x.png" ] || fail "the writability check left $W/b0/x.png behind"
if [ "$(id -u)" -ne 0 ]; then # (root writes anywhere)
  mkdir -p "$W/ro" && chmod 555 "$W/ro"
  run 1 txt2img -m "$NOMODEL" -p x -o "$W/ro/x.png" && err_has "cannot write $W/ro/x.png"
  chmod 755 "$W/ro"
fi
# the check leaves nothing behind when the run fails later (here: at the model load) ...
run 1 txt2img -m "$NOMODEL" -p x --batch-count 2 -o "$W/later.png" && err_has "no-such-model"
for f in later.png later-0.png later-1.png; do [ ! -e "$W/$f" ] || fail "a failed run left $f behind"; done
# ... and does not touch an existing file
echo old >"$W/keep.png"
run 1 txt2img -m "$NOMODEL" -p x -o "$W/keep.png" && [ "$(cat "$W/keep.png")" = old ] || fail "keep.png was changed"
# a missing --init-img is found before the model loads too
run 1 txt2img -m "$NOMODEL" -p x --init-img "$W/no-such.png" -o "$W/i.png" && err_has "no-such.png" && err_lacks "no-such-model"

# ---- --clip-skip past the text encoder (tiny-sd's has 2 layers): the error names the value
# given (the library's own message counts layers skipped: "clip_skip 19" for 20) ----
usage_error txt2img -m "$M" -p x --clip-skip 20 -o "$W/c.png" && err_has "--clip-skip 20" && err_lacks "19" &&
  err_has "0..3" && err_lacks "loading"
usage_error txt2img -m "$M" -p x --clip-skip 4 -o "$W/c.png" && err_has "--clip-skip 4"
run 0 txt2img -m "$M" -p x --steps 1 --clip-skip 3 -q -o "$W/c.png" && is_png "$W/c.png"

# ---- --prompt-syntax: a1111 weights change the image, plain reads brackets as text
usage_error txt2img -m "$M" -p x --prompt-syntax comfy && err_has "--prompt-syntax takes plain or a1111"
run 0 txt2img -m "$M" -p "a (red:1.5) fox" --steps 1 --prompt-syntax a1111 -q -o "$W/a.png" && is_png "$W/a.png"
run 0 txt2img -m "$M" -p "a (red:1.5) fox" --steps 1 -q -o "$W/p.png" && is_png "$W/p.png"
cmp -s "$W/a.png" "$W/p.png" && fail "--prompt-syntax a1111 made the plain prompt's image"
grep -q "Emphasis: None" "$W/p.png" || fail "a plain prompt with brackets: no 'Emphasis: None' in the PNG"
run 1 txt2img -m "$M" -p "(fox:1.2.3)" --steps 1 --prompt-syntax a1111 -q -o "$W/e.png" && err_has "1.2.3"
run 0 txt2img -m "$M" -p x --steps 1 --clip-skip 2 -q -o "$W/c2.png" && is_png "$W/c2.png"

# ---- progress: one line per step when stderr is not a terminal, a bar on a terminal ----
CR=$(printf '\r')
run 0 txt2img -m "$M" -p x --steps 3 -o "$W/p.png" &&
  for t in "loading $M ..." "loaded in " "encoding the prompt (seed 0) ..." "encoded in " "step 1/3 " "step 2/3 " \
           "step 3/3 " "decoding (VAE) ..." "decoded in " "wrote $W/p.png"; do err_has "$t"; done
grep -q "$CR" "$W/err" && fail "carriage returns in non-terminal progress: $LAST"
[ "$(grep -c '^step ' "$W/err")" -eq 3 ] || fail "not one line per step: $LAST"
run 0 txt2img -m "$M" -p x --steps 2 --batch-count 2 -o "$W/p.png" && err_has "image 2/2: step 2/2 " &&
  err_has "image 1/2: decoded in "
run 0 txt2img -m "$M" -p x --steps 3 -q -o "$W/p.png" &&
  { [ "$(wc -l <"$W/err")" -eq 1 ] && err_has "wrote $W/p.png"; } || fail "-q printed more than the 'wrote' line"
grep -q "s/step x 3), decode [0-9.]* s, total" "$W/err" || fail "the 'wrote' line lost its format: $LAST"
if command -v script >/dev/null 2>&1; then
  LAST="txt2img on a terminal (script)"
  script -qec "${SF_TEST_EMULATOR:-} '$S' txt2img -m '$M' -p x --steps 3 -o '$W/tty.png'" /dev/null </dev/null >"$W/err" 2>&1 ||
    fail "exit status $?: $LAST"
  grep -q "$CR\[#*  *\] 1/3 " "$W/err" || fail "no progress bar redrawn with carriage returns: $LAST"
  err_has "] 3/3 "
  err_lacks "step 1/3"
  grep -q "loading $M \.\.\. [0-9.]* s" "$W/err" || fail "no 'loading ... TIME' line: $LAST"
  grep -q "decoding (VAE) \.\.\. [0-9.]* s" "$W/err" || fail "no 'decoding ... TIME' line: $LAST"
else
  echo "note: no script(1): the terminal progress bar is not tested"
fi

# ---- --preview: a PNG after every step (the latent projection at 1/8 size, or TAESD) ----
echo old >"$W/pv.png"
run 0 txt2img -m "$M" -p x --steps 3 -q --preview "$W/pv.png" -o "$W/pv-out.png" && is_png "$W/pv.png" 8 8 &&
  is_png "$W/pv-out.png" 64 64
grep -q "s/step x 3), previews [0-9.]* s, decode [0-9.]* s, total" "$W/err" || fail "no preview time: $LAST"
[ ! -e "$W/pv.png.part" ] || fail "the preview's temporary file was left behind"
cp "$W/pv.png" "$W/pv-3.png"
run 0 txt2img -m "$M" -p x --steps 3 -q --taesd "$T" --preview "$W/pv.png" -o "$W/pv-out.png" &&
  is_png "$W/pv.png" 64 64
run 0 txt2img -m "$M" -p x --steps 2 -q --taesd "$T" --decoder taesd --batch-count 2 --preview "$W/pvb.png" \
  -o "$W/pvb-%d.png" && is_png "$W/pvb.png" 64 64 && is_png "$W/pvb-1.png" 64 64
# the preview follows the run: after 1 of 3 steps it differs from the one after the last step
run 0 txt2img -m "$M" -p x --steps 1 -q --preview "$W/pv-1.png" -o "$W/pv-out.png" && is_png "$W/pv-1.png" 8 8
cmp -s "$W/pv-1.png" "$W/pv-3.png" && fail "the preview after 1 step equals the one after 3"
usage_error txt2img -m "$NOMODEL" -p x --preview "$W/pv.jpg" -o "$W/u.png" && err_has "only PNG is written"
usage_error txt2img -m "$NOMODEL" -p x --preview && err_has "--preview needs a value"
run 1 txt2img -m "$NOMODEL" -p x --preview "$W/no-such-dir/pv.png" -o "$W/u.png" &&
  err_has "cannot write $W/no-such-dir/pv.png" && err_lacks "no-such-model"

# ---- bench and check: bad numbers are one-line usage errors too ----
for bad in "--cfg-scale ''" "--cfg-scale nan" "--steps 5000" "--steps 0" "-t 0" "-t 99999999999999999999" \
           "--probe-seconds ''" "--size 100" "--repeat 0"; do
  eval "set -- $bad"
  usage_error bench txt2img --config "$NOMODEL" "$@"
done
usage_error bench txt2img --config "$NOMODEL" --steps 5000 && err_has "--steps takes 1..1000"
usage_error check "$F/public" -t 0
usage_error check "$F/public" -t 99999999999999999999
usage_error check "$F/public" --bogus
usage_error check

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all passed"
