/* A full load through the public API with the input as the UNet's weights: tiny-sd's files in an
 * sf_files set (borrowed) with the input as unet/diffusion_pytorch_model.safetensors, loaded
 * with SF_PARAM_COMPONENTS = SF_NET_UNET; if it loads, one sf_unet_predict_v2 on a small input.
 *
 * Invariants: a load either succeeds or fails with a known status and a message (never
 * SF_ERR_INTERNAL); a UNet that loaded runs. (The seeds are the real weights, so most inputs
 * are weights with changed values: NaN, Inf, denormals must not crash the kernels.) */
#include "fuzz_common.h"

static sf_context *ctx;
static sf_params *options;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fz_tiny_sd_read();
  ctx = fz_context();
  if (sf_params_create(&options) != SF_OK || sf_params_set_int(options, SF_PARAM_COMPONENTS, SF_NET_UNET) != SF_OK)
    fz_die("params");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Without the tokenizer (not needed without the text encoder; parsing it every time would be
   * most of the cost) and the UNet's own weights, which the input replaces. */
  static const char *const skip[] = {"tokenizer/", "unet/diffusion_pytorch_model.safetensors", NULL};
  sf_files *files = fz_tiny_sd_set(skip);
  if (sf_files_add(files, "unet/diffusion_pytorch_model.safetensors", data, size, 0) != SF_OK) fz_die(sf_last_error());
  sf_pipeline *p = NULL;
  sf_status s = sf_pipeline_load_files(ctx, files, options, &p);
  if (s == SF_OK) {
    FZ_ASSERT(p != NULL && (fz_info(p, SF_INFO_NETWORKS, 0) & SF_NET_UNET), "loaded without a UNet");
    fz_run_unet(p);
  } else {
    FZ_ASSERT(p == NULL, "a failed load returned a pipeline");
    fz_check_failure(s, "sf_pipeline_load_files");
  }
  sf_pipeline_destroy(p);
  sf_files_destroy(files);
  return 0;
}
