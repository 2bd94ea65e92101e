/* LoRA files (SF_PARAM_LORAS, src/lora) through the public API: the input is a whole LoRA
 * .safetensors file, written to a temporary file and applied to the models set's tiny-sd-mini
 * folder, first inspect-only (every key mapped and every shape checked, nothing read), then in a
 * real load of the text encoder if the inspection accepted it (the deltas merged in float64 as
 * its layers are packed). Each load also reads the tokenizer (~0.1 s), so runs are slow. Any
 * status is fine, as long as a failure has a message and returns no pipeline; a crash, a leak or
 * an out-of-bounds read is not.
 *
 * Seeds: the set's kohya and PEFT LoRA files, their headers alone and truncations
 * (make_seeds.py). Build: as the other tests/fuzz targets. */
#include "fuzz_common.h"

static sf_context *ctx;
static char model[4200];
static const char *lora_path;
static int have_model;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  ctx = fz_context();
  snprintf(model, sizeof model, "%s/models/tiny-sd-mini", fz_fixtures());
  struct stat st;
  have_model = stat(model, &st) == 0;
  lora_path = fz_tmp_file(".safetensors");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!have_model) return 0;
  fz_write_file(lora_path, data, size);
  for (int pass = 0; pass < 2; pass++) {
    sf_params *o = NULL;
    if (sf_params_create(&o) != SF_OK || sf_params_set_string(o, SF_PARAM_LORAS, lora_path) != SF_OK ||
        sf_params_set_int(o, pass == 0 ? SF_PARAM_INSPECT_ONLY : SF_PARAM_COMPONENTS,
                          pass == 0 ? 1 : SF_NET_TEXT_ENCODER) != SF_OK)
      fz_die("params");
    sf_pipeline *p = NULL;
    sf_status s = sf_pipeline_load(ctx, model, o, &p);
    sf_params_destroy(o);
    if (s == SF_OK) {
      FZ_ASSERT(p != NULL, "a load succeeded without a pipeline");
    } else {
      FZ_ASSERT(p == NULL, "a failed load returned a pipeline");
      fz_check_failure(s, pass == 0 ? "sf_pipeline_load (LoRA, inspect)" : "sf_pipeline_load (LoRA)");
    }
    sf_pipeline_destroy(p);
    if (s != SF_OK) break; /* a file the inspection refuses is not loaded for real */
  }
  return 0;
}
