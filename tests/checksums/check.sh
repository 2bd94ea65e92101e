#!/bin/sh
# The cross-CPU checksum table (tests/checksums/checksums.txt): every case of the public fixture
# set (`snapfusion check --digest`: SHA-256 of the raw float32 bytes of everything a case
# computes) and a random-weight txt2img (txt2img_random.c) must give exactly the table's
# digests, on x86-64 (scalar, AVX2, AVX-512 kernels) and AArch64 alike: the library promises
# the same bits on every CPU with its own kernels (SF_PARAM_GEMM_BACKEND 0, the default).
#   usage: check.sh SNAPFUSION TXT2IMG_RANDOM DEFAULT_FIXTURES TABLE [--update]
# SF_TEST_EMULATOR (cross builds) is put in front of both programs. --update rewrites TABLE
# from this machine's run (only after checking that the difference is intended).
set -u
S=$1
T=$2
F=${SNAPFUSION_FIXTURES:-$3}
TABLE=$4
UPDATE=${5:-}
if [ ! -f "$F/public/manifest.json" ]; then
  echo "SKIPPED: fixtures not found at $F (set SNAPFUSION_FIXTURES)"
  exit 77
fi
out=$(mktemp)
trap 'rm -f "$out" "$out.got" "$out.want"' EXIT
# Two threads: results do not depend on the thread count (other tests check that).
${SF_TEST_EMULATOR:-} "$S" check "$F/public" --digest -t 2 >"$out" 2>/dev/null || {
  echo "FAIL: snapfusion check failed:"; cat "$out"; exit 1; }
${SF_TEST_EMULATOR:-} "$T" "$F/public" 2 >>"$out" || { echo "FAIL: txt2img_random failed"; exit 1; }
grep ' sha256=' "$out" | awk '{print $1, $3}' >"$out.got"
if [ "$UPDATE" = "--update" ]; then
  { sed -n '/^#/p' "$TABLE" 2>/dev/null; cat "$out.got"; } >"$out.want"
  cp "$out.want" "$TABLE"
  echo "wrote $TABLE ($(wc -l <"$out.got") digests)"
  exit 0
fi
grep -v '^#' "$TABLE" | grep -v '^$' >"$out.want"
if ! diff -u "$out.want" "$out.got"; then
  echo "FAIL: the digests above differ from $TABLE (- table, + this build on $(uname -m))"
  exit 1
fi
echo "all $(wc -l <"$out.got") digests equal $TABLE ($(uname -m) host$( [ -n "${SF_TEST_EMULATOR:-}" ] && echo ', emulated'))"
