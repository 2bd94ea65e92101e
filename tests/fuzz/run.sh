#!/bin/sh
# Runs the libFuzzer targets of a -DSF_FUZZ=ON build, one after another, each for SECONDS.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]      (default: every fuzz_* target)
#
# Each target starts from its seeds (BUILD_DIR/tests/fuzz/seeds/TARGET, derived from the
# fixtures at build time) and grows its corpus in BUILD_DIR/tests/fuzz/corpus/TARGET, kept
# between runs (delete it to start over). A crash, leak, UB report, failed invariant, timeout
# (one input over 30 s) or out-of-memory stops that target with its input written to
# BUILD_DIR/tests/fuzz/artifacts/TARGET/; the script goes on with the others and exits 1 at
# the end if any target failed. Extra libFuzzer options: FUZZ_ARGS="-jobs=2 -workers=2".
# Reproduce a failure with: BUILD_DIR/tests/fuzz/TARGET ARTIFACT_FILE
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
fi
build=$1
seconds=$2
shift 2
dir=$build/tests/fuzz
if [ ! -d "$dir/seeds" ]; then
  echo "$dir/seeds not found: configure with -DCMAKE_C_COMPILER=clang -DSF_FUZZ=ON and build first" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  for f in "$dir"/fuzz_*; do
    [ -f "$f" ] && [ -x "$f" ] && set -- "$@" "$(basename "$f")"
  done
fi

# Leaks are failures; a UB report stops the run (the build also uses -fno-sanitize-recover).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

failed=""
summary=""
for t in "$@"; do
  exe=$dir/$t
  if [ ! -x "$exe" ]; then
    echo "no target $exe" >&2
    failed="$failed $t"
    continue
  fi
  seeds=$dir/seeds/$t
  corpus=$dir/corpus/$t
  artifacts=$dir/artifacts/$t
  mkdir -p "$corpus" "$artifacts" "$seeds"
  # Inputs up to the largest seed (the UNet's weights are 4.4 MB), at least 64 KiB.
  max_len=65536
  for f in "$seeds"/*; do
    [ -f "$f" ] || continue
    s=$(wc -c < "$f")
    [ "$s" -gt "$max_len" ] && max_len=$s
  done
  mkdir -p "$dir/logs"
  log=$dir/logs/$t.log
  echo "== $t: $seconds s (log: $log)"
  # shellcheck disable=SC2086
  "$exe" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=3072 -max_len="$max_len" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$corpus" "$seeds" > "$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    echo "FAILED: $t (exit $rc); the end of its log:"
    grep -v '^#' "$log" | tail -40
    ls -1 "$artifacts" | sed "s|^|  artifact: $artifacts/|"
    failed="$failed $t"
    summary="$summary
  $t: FAILED after ${runs:-?} executions"
  else
    summary="$summary
  $t: ${runs:-?} executions in ${took:-?} s, corpus $(ls "$corpus" | wc -l) inputs"
  fi
done
echo "== summary$summary"
if [ -n "$failed" ]; then
  echo "failed:$failed" >&2
  exit 1
fi
