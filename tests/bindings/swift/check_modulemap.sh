#!/bin/sh
# The Clang side of the Swift package: Sources/CSnapFusion/module.modulemap must build as a
# Clang module (what `import CSnapFusion` in Swift does) and export every SF_API function of
# snapfusion.h. No Swift toolchain is needed: clang does the import.
#   check_modulemap.sh SOURCE_DIR WORK_DIR
set -e
src=$1 work=$2
cc=${CLANG:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then echo "SKIPPED: clang not found (apt-get install clang)"; exit 77; fi
map="$src/bindings/swift/Sources/CSnapFusion/module.modulemap"
rm -rf "$work"; mkdir -p "$work/cache"

# One reference per public function, taken from the header itself.
funcs=$(sed -e 's,/\*.*\*/,,' "$src/include/snapfusion.h" | tr '\n' ' ' | grep -o 'SF_API[^;]*;' |
        grep -o 'sf_[a-z0-9_]*[[:space:]]*(' | tr -d ' (' | sort -u)
n=$(echo "$funcs" | wc -l)
[ "$n" -gt 60 ] || { echo "found only $n functions in the header"; exit 1; }

for lang in c objective-c; do
  f="$work/import_test.$( [ $lang = c ] && echo c || echo m )"
  {
    # Objective-C has Swift's spelling; C has the same import as a pragma.
    if [ $lang = c ]; then echo "#pragma clang module import CSnapFusion"; else echo "@import CSnapFusion;"; fi
    echo "int main(void) {"
    echo "  sf_context *ctx = 0; sf_status s = sf_context_create(&ctx); (void)s;"
    echo "  sf_params *p = 0; (void)sf_params_set_int(p, SF_PARAM_STEPS, 8);"
    echo "  _Static_assert(SF_ABI_VERSION == 1, \"abi\");"
    # The 1.1 macros and enums the Swift wrapper uses.
    echo "  _Static_assert(SF_SEED_RANDOM == -1, \"seed\");"
    echo "  unsigned flags = SF_LATENTS_UNSCALED | SF_IMAGE_RAW; (void)flags;"
    echo "  sf_layout l = SF_LAYOUT_NHWC; sf_schedule_table t = SF_TABLE_ALPHAS_CUMPROD; (void)l; (void)t;"
    echo "  sf_info i = SF_INFO_SIZE_MULTIPLE; i = SF_INFO_ACTIVE_RUNS; i = SF_INFO_SCALE_FACTOR; i = SF_INFO_WEIGHT_BYTES; (void)i;"
    echo "  sf_weight_type w = SF_WEIGHT_DEFAULT; w = SF_WEIGHT_F32; w = SF_WEIGHT_F16; w = SF_WEIGHT_Q8; (void)w;"
    echo "  _Static_assert(SF_WEIGHT_Q8 == 3, \"weight types\");"
    echo "  (void)sf_params_set_int(p, SF_PARAM_WEIGHT_TYPE, SF_WEIGHT_Q8); (void)sf_params_set_int(p, SF_PARAM_LOW_MEMORY, 1);"
    # Inspection and memory estimates (Pipeline.inspect, estimateMemory, weightType, arenaBytes).
    echo "  (void)sf_params_set_int(p, SF_PARAM_INSPECT_ONLY, 1); (void)sf_params_set_int(p, SF_PARAM_BATCH_COUNT, 2);"
    echo "  i = SF_INFO_WEIGHT_TYPE; i = SF_INFO_ARENA_BYTES; (void)i;"
    echo "  sf_memory m = SF_MEMORY_PEAK; m = SF_MEMORY_WEIGHTS; m = SF_MEMORY_WORKSPACE; m = SF_MEMORY_OTHER;"
    echo "  m = SF_MEMORY_WEIGHTS_TOTAL; m = SF_MEMORY_WORKSPACE_RUN;"
    echo "  _Static_assert(SF_MEMORY_PEAK == 0 && SF_MEMORY_WORKSPACE_RUN == 5, \"memory figures\");"
    echo "  _Static_assert(SF_LOG_ERROR == 3, \"log levels\");"
    echo "  { int64_t bytes = 0; (void)sf_pipeline_estimate_memory((const sf_pipeline *)0, (const sf_params *)p, m, &bytes); }"
    echo "  sf_files *files = 0; sf_pipeline *pipe = 0; (void)sf_files_add(files, \"a\", 0, 0, 1);"
    echo "  (void)sf_pipeline_load_files(ctx, files, p, &pipe); sf_files_destroy(files);"
    for fn in $funcs; do echo "  (void)&$fn;"; done
    echo "  return 0;"
    echo "}"
  } > "$f"
  # -I: the header the shim includes, as after `cmake --install` (pkg-config gives the same).
  "$cc" -x $lang -fmodules -fimplicit-module-maps -fmodules-cache-path="$work/cache" \
        -fmodule-map-file="$map" -I "$src/include" -Wall -Werror -Wno-deprecated-declarations -fsyntax-only "$f"
  echo "$lang: import of CSnapFusion compiled, $n functions visible"
done
# The module is built from the shim, not from a textual include of the header.
ls "$work"/cache/*/CSnapFusion-*.pcm >/dev/null 2>&1 || { echo "no CSnapFusion module was built"; exit 1; }
echo "module built: $(ls "$work"/cache/*/CSnapFusion-*.pcm | head -1)"
