#!/bin/sh
# The Kotlin binding on the tiny-sd fixture model:
# 1. the documented commands that build and run the example (doc-test: kotlin-build-run in
#    bindings/README.md and the header of bindings/kotlin/examples/Txt2Img.kt), exactly as
#    written, in a sandboxed copy of the source tree (tests/bindings/doc_commands.py);
# 2. the test program and the README's Kotlin snippet (doc-test: kotlin-readme-example),
#    compiled against the binding jar step 1 made, and run.
# run.sh SOURCE_DIR WORK_DIR LIBRARY DEFAULT_FIXTURES [PYTHON]
set -e
src=$1 work=$2 lib=$3
fx=${SNAPFUSION_FIXTURES:-$4}
py=${5:-python3}
jna=${JNA_JAR:-/usr/share/java/jna.jar}
docs="$src/tests/bindings/doc_commands.py"
if ! command -v kotlinc >/dev/null 2>&1; then echo "SKIPPED: kotlinc not found (apt-get install kotlin)"; exit 77; fi
if [ ! -f "$jna" ]; then echo "SKIPPED: $jna not found (apt-get install libjna-java)"; exit 77; fi
if [ ! -f "$fx/public/manifest.json" ]; then echo "SKIPPED: fixtures not found at $fx (set SNAPFUSION_FIXTURES)"; exit 77; fi
rm -rf "$work"; mkdir -p "$work"

# 1. As documented (kotlinc 1.3 prints a harmless JDK deprecation warning about -Xverify:none).
"$py" "$docs" --source "$src" --build "$(dirname "$lib")" --fixtures "$fx" --work "$work/docs" run kotlin-build-run
repo=$work/docs/repo
for j in snapfusion-kotlin txt2img; do
  [ -f "$repo/$j.jar" ] || { echo "the documented commands made no $j.jar"; exit 1; }
done

# 2. The test program and the README snippet in one compiler run (each kotlinc start costs seconds).
"$py" "$docs" --source "$src" extract kotlin-readme-example "$work/ReadmeExample.kt"
kotlinc -nowarn -cp "$jna:$repo/snapfusion-kotlin.jar" "$src/tests/bindings/kotlin/BindingTest.kt" \
  "$work/ReadmeExample.kt" -d "$work/programs.jar" 2>&1 | grep -v 'Xverify' || true
[ -f "$work/programs.jar" ] || { echo "kotlinc did not produce programs.jar"; exit 1; }
rt=$(dirname "$(readlink -f "$(command -v kotlinc)")")/../lib/kotlin-stdlib.jar
[ -f "$rt" ] || rt=/usr/share/java/kotlin-stdlib.jar
cp="$repo/snapfusion-kotlin.jar:$jna:$rt:$work/programs.jar"
export SNAPFUSION_LIBRARY="$lib"
# The example's memory options; the test program compares its image with Pipeline.load(weights = Q8).
java -cp "$repo/snapfusion-kotlin.jar:$repo/txt2img.jar:$jna:$rt" Txt2ImgKt --weights q8 --low-memory \
  "$fx/public/tiny-sd" "a red fox" "$work/example-q8.png" 2 5 > "$work/example-q8.out"
cat "$work/example-q8.out"
grep -q "example-q8.png: 64x64, weights in memory " "$work/example-q8.out" || { echo "Txt2ImgKt --weights q8 --low-memory: no summary line"; exit 1; }
if java -cp "$repo/snapfusion-kotlin.jar:$repo/txt2img.jar:$jna:$rt" Txt2ImgKt --weights q4 "$fx/public/tiny-sd" x "$work/x.png" 2> "$work/example-q4.err"; then
  echo "Txt2ImgKt --weights q4 was accepted"; exit 1
fi
grep -q "unknown weight type 'q4'" "$work/example-q4.err" || { echo "Txt2ImgKt --weights q4: $(cat "$work/example-q4.err")"; exit 1; }
java -cp "$cp" BindingTestKt "$fx/public/tiny-sd" "$work" "$src/include/snapfusion.h"
# The snippet loads "models/tiny-sd": the sandbox links it to the fixture model.
(cd "$repo" && rm -f astronaut.png second.png fox-from-memory.png && java -cp "$cp" ReadmeExampleKt)
for f in astronaut.png second.png fox-from-memory.png; do
  [ -s "$repo/$f" ] || { echo "the README snippet wrote no $f"; exit 1; }
done
echo "README snippet wrote $repo/astronaut.png, second.png and fox-from-memory.png"
