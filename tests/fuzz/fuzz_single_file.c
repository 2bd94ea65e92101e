/* Single-file checkpoints (the original LDM layout, io/ldm_keys.h) through the public API: the
 * input is one .safetensors file, the only file of an sf_files set (borrowed), loaded
 *  1. with SF_PARAM_INSPECT_ONLY and no config: key mapping, EMA matching and the architecture
 *     inferred from the shapes (io/ldm_config.h), every network checked, nothing read;
 *  2. with the models fixture set's tiny-sd-mini folder as SF_PARAM_CONFIG_PATH and
 *     SF_PARAM_COMPONENTS = UNet: a full load (the file's tensors mapped, converted and packed)
 *     and, if it loads, one UNet call.
 *
 * Invariants: each load either succeeds or fails with a known status and a message (never
 * SF_ERR_INTERNAL); a UNet that loaded runs. Without the models set (an older fixture folder)
 * only the first load is made. */
#include "fuzz_common.h"

static sf_context *ctx;
static sf_params *inspect, *full;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  ctx = fz_context();
  static char config[4200];
  snprintf(config, sizeof config, "%s/models/tiny-sd-mini", fz_fixtures());
  struct stat st;
  if (sf_params_create(&inspect) != SF_OK || sf_params_set_int(inspect, SF_PARAM_INSPECT_ONLY, 1) != SF_OK)
    fz_die("params");
  if (stat(config, &st) == 0 &&
      (sf_params_create(&full) != SF_OK || sf_params_set_string(full, SF_PARAM_CONFIG_PATH, config) != SF_OK ||
       sf_params_set_int(full, SF_PARAM_COMPONENTS, SF_NET_UNET) != SF_OK))
    fz_die("params");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sf_files *files = NULL;
  if (sf_files_create(&files) != SF_OK || sf_files_add(files, "model.safetensors", data, size, 0) != SF_OK)
    fz_die(sf_last_error());
  for (int pass = 0; pass < 2; pass++) {
    sf_params *o = pass == 0 ? inspect : full;
    if (o == NULL) continue;
    sf_pipeline *p = NULL;
    sf_status s = sf_pipeline_load_files(ctx, files, o, &p);
    if (s == SF_OK) {
      FZ_ASSERT(p != NULL, "a load succeeded without a pipeline");
      if (pass == 1 && (fz_info(p, SF_INFO_NETWORKS, 0) & SF_NET_UNET)) fz_run_unet(p);
    } else {
      FZ_ASSERT(p == NULL, "a failed load returned a pipeline");
      fz_check_failure(s, pass == 0 ? "sf_pipeline_load_files (inspect)" : "sf_pipeline_load_files (config)");
    }
    sf_pipeline_destroy(p);
  }
  sf_files_destroy(files);
  return 0;
}
