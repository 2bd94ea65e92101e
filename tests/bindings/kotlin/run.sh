#!/bin/sh
# Builds the Kotlin binding, its test program and the example with kotlinc, then runs both
# on the tiny-sd fixture model.  run.sh SOURCE_DIR WORK_DIR LIBRARY DEFAULT_FIXTURES
set -e
src=$1 work=$2 lib=$3
fx=${SNAPFUSION_FIXTURES:-$4}
jna=${JNA_JAR:-/usr/share/java/jna.jar}
if ! command -v kotlinc >/dev/null 2>&1; then echo "SKIPPED: kotlinc not found (apt-get install kotlin)"; exit 77; fi
if [ ! -f "$jna" ]; then echo "SKIPPED: $jna not found (apt-get install libjna-java)"; exit 77; fi
if [ ! -f "$fx/public/manifest.json" ]; then echo "SKIPPED: fixtures not found at $fx (set SNAPFUSION_FIXTURES)"; exit 77; fi
rm -rf "$work"; mkdir -p "$work"
# kotlinc 1.3 prints a JDK deprecation warning about -Xverify:none on JDK >= 13; it is harmless.
kotlinc -nowarn -cp "$jna" "$src/bindings/kotlin/src/snapfusion/SnapFusion.kt" -d "$work/snapfusion-kotlin.jar" 2>&1 | grep -v 'Xverify' || true
# The test program and the example in one compiler run (each kotlinc start costs seconds).
kotlinc -nowarn -cp "$jna:$work/snapfusion-kotlin.jar" "$src/tests/bindings/kotlin/BindingTest.kt" \
  "$src/bindings/kotlin/examples/Txt2Img.kt" -d "$work/programs.jar" 2>&1 | grep -v 'Xverify' || true
for j in snapfusion-kotlin programs; do
  [ -f "$work/$j.jar" ] || { echo "kotlinc did not produce $j.jar"; exit 1; }
done
rt=$(dirname "$(readlink -f "$(command -v kotlinc)")")/../lib/kotlin-stdlib.jar
[ -f "$rt" ] || rt=/usr/share/java/kotlin-stdlib.jar
cp="$work/snapfusion-kotlin.jar:$jna:$rt"
export SNAPFUSION_LIBRARY="$lib"
java -cp "$cp:$work/programs.jar" BindingTestKt "$fx/public/tiny-sd" "$work"
rm -f "$work/example.png"
java -cp "$cp:$work/programs.jar" Txt2ImgKt "$fx/public/tiny-sd" "a photo of an astronaut riding a horse" "$work/example.png" 4 3
[ -s "$work/example.png" ] || { echo "the example wrote no PNG"; exit 1; }
echo "example wrote $work/example.png"
